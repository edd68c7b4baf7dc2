// kq_unwind_bench: times the project's unwinder on a dump, without LLDB.
//
//   kq_unwind_bench VMLINUX DUMP [--modules-dir DIR]... [--repeat N] [--limit N] [--json]
//
// Opens the dump (LinuxSystem::open_dump: tasks, modules, .ko files), sets
// up a LinuxUnwinder, then unwinds every task --repeat times (default 5):
// the first pass is cold (empty caches), the best pass is reported too.
// "walk" is lu.unwind(t) alone; "walk+names" also symbolizes every frame
// (lu.describe), as kmod threads does, and counts the tasks with a frame in
// a module. --limit N unwinds only the first N
// tasks (for profilers). --json prints one JSON object instead of text.
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernel/linux/linux_system.h"
#include "unwinder/linux_unwind.h"

using namespace kq;

namespace {

double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double cpu_now() {  // this process's CPU time: what other load on the machine leaves alone
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Pass {
    double seconds = 0, cpu_seconds = 0;
    size_t frames = 0, at_base = 0, in_module = 0;
};

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: kq_unwind_bench VMLINUX DUMP [--modules-dir DIR]... [--repeat N] [--limit N] [--json]\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> pos;
    OpenOptions opts;
    int repeat = 5;
    size_t limit = 0;
    bool json = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--modules-dir" && i + 1 < argc) opts.modules_dirs.push_back(argv[++i]);
        else if (a == "--repeat" && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
        else if (a == "--limit" && i + 1 < argc) limit = std::strtoul(argv[++i], nullptr, 10);
        else if (a == "--json") json = true;
        else if (a.rfind("--", 0) == 0) usage();
        else pos.push_back(a);
    }
    if (pos.size() != 2) usage();

    try {
        double t0 = now();
        auto sys = LinuxSystem::open_dump(pos[0], pos[1], opts);
        double t1 = now();
        LinuxUnwinder lu(sys->kernel(), sys->modules());
        double t2 = now();

        std::vector<const Thread*> tasks;
        for (const Thread& t : sys->threads()) tasks.push_back(&t);
        if (limit && limit < tasks.size()) tasks.resize(limit);

        auto in_module = [&](const std::vector<Frame>& frames) {
            for (const Frame& f : frames)
                for (const Module& m : sys->modules())
                    if (m.contains(f.pc)) return true;
            return false;
        };
        auto walk = [&](bool names) {
            Pass p;
            size_t chars = 0;
            double s = now(), c = cpu_now();
            for (const Thread* t : tasks) {
                std::vector<Frame> frames = lu.unwind(*t);
                p.frames += frames.size();
                p.at_base += reached_base(frames);
                if (names) {
                    for (const Frame& f : frames) chars += lu.describe(f).size();
                    p.in_module += in_module(frames);
                }
            }
            p.seconds = now() - s;
            p.cpu_seconds = cpu_now() - c;
            if (names && !chars) std::fprintf(stderr, "no frame was described\n");
            return p;
        };
        std::vector<Pass> passes;
        for (int i = 0; i < repeat; ++i) passes.push_back(walk(false));
        Pass named = walk(true);
        const Pass& cold = passes.front();
        const Pass& best = *std::min_element(passes.begin(), passes.end(),
                                             [](const Pass& a, const Pass& b) { return a.seconds < b.seconds; });

        struct rusage ru {};
        getrusage(RUSAGE_SELF, &ru);
        const double n = static_cast<double>(tasks.size());
        if (json) {
            std::printf(
                "{\"tasks\": %zu, \"frames\": %zu, \"at_base\": %zu, \"in_module\": %zu, \"open_s\": %.6f, "
                "\"setup_s\": %.6f, \"walk_cold_s\": %.6f, \"walk_cold_cpu_s\": %.6f, \"walk_best_s\": %.6f, "
                "\"walk_names_s\": %.6f, \"repeat\": %d, \"max_rss_kb\": %ld}\n",
                tasks.size(), cold.frames, cold.at_base, named.in_module, t1 - t0, t2 - t1, cold.seconds,
                cold.cpu_seconds, best.seconds, named.seconds, repeat, ru.ru_maxrss);
            return 0;
        }
        std::printf("%s: %zu tasks, %zu frames, %zu reached their base, %zu with a module frame\n", pos[1].c_str(),
                    tasks.size(), cold.frames, cold.at_base, named.in_module);
        std::printf("open dump (tasks, modules)  %8.3f s\n", t1 - t0);
        std::printf("unwinder setup              %8.3f s\n", t2 - t1);
        std::printf("walk, first pass            %8.3f s  %10.0f stacks/s (CPU %.3f s)\n", cold.seconds,
                    n / cold.seconds, cold.cpu_seconds);
        std::printf("walk, best of %-2d            %8.3f s  %10.0f stacks/s\n", repeat, best.seconds,
                    n / best.seconds);
        std::printf("walk + symbolized frames    %8.3f s  %10.0f stacks/s\n", named.seconds, n / named.seconds);
        std::printf("max RSS                     %8ld KiB\n", ru.ru_maxrss);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kq_unwind_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
