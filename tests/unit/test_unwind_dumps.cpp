// The unwinder on the lab's real dumps ($KQ_DUMPS with kaslr.elf and
// nokaslr.elf, $KQ_VMLINUX): every task is unwound; all must reach the base
// of their stack, and kq_nested's stack must show its module frames below
// kernel frames (kq_nested_run -> sort_r -> kq_nested_cmp -> schedule ...).
// Skipped without KQ_DUMPS.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "kernel/linux/linux_kernel.h"
#include "kernel/linux/module.h"
#include "kernel/linux/task.h"
#include "symbols/elf_image.h"
#include "symbols/types.h"
#include "test_unwind_support.h"
#include "unwinder/linux_unwind.h"
#include "vmcore/dump.h"

using namespace kq;

namespace {

std::string dumps_dir() {
    const char* d = std::getenv("KQ_DUMPS");
    if (!d || !*d || !std::filesystem::exists(std::string(d) + "/kaslr.elf")) return {};
    return d;
}

struct Result {
    size_t tasks = 0, base = 0;
    std::map<std::string, size_t> stops;
    std::map<std::string, size_t> methods;
    std::map<std::string, size_t> checks;
    std::vector<std::string> failures;
    std::string nested;  // kq_nested's stack, rendered
    std::vector<std::string> nested_frames;
    size_t max_frames = 0;
    double ms = 0;
};

Result unwind_dump(const std::string& file, bool cfi_check = false) {
    const test::Vmlinux* v = test::vmlinux();
    auto dump = Dump::open(file);
    uint64_t slide = 0;
    if (auto off = dump->vmcoreinfo_value("KERNELOFFSET")) slide = std::stoull(*off, nullptr, 16);
    LinuxKernel k(*dump, *v->image, v->types(), slide);
    k.check_banner();
    auto tasks = read_tasks(k, dump->cpus());
    auto mods = read_modules(k);
    std::string dir = std::filesystem::path(file).parent_path().string() + "/modules/";
    for (auto& m : mods.modules)
        if (std::filesystem::exists(dir + m.name + ".ko")) m.ko_path = dir + m.name + ".ko";

    auto c0 = std::chrono::steady_clock::now();
    LinuxUnwinder lu(k, mods.modules);
    std::printf("  LinuxUnwinder set up in %.1f ms (%zu ORC tables)\n",
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - c0).count(),
                lu.unwinder().orc().tables().size());
    for (const auto& w : lu.warnings()) std::printf("  warning: %s\n", w.c_str());
    Result r;
    // Every CPU has an IRQ stack and the IST stacks, readable in the dump.
    std::map<int, std::string> per_cpu;
    for (const auto& st : lu.cpu_stacks()) {
        uint64_t top;
        bool readable = dump->read_exact(st.base + st.size - 8, &top, 8);
        per_cpu[st.cpu] += " " + st.name + (readable ? "" : "(unreadable)");
        EXPECT_TRUE(readable) << st.name << " stack of CPU " << st.cpu;
        EXPECT_GE(st.size, 4096u);
    }
    EXPECT_EQ(per_cpu.size(), static_cast<size_t>(k.nr_cpus()));
    for (auto& [c, names] : per_cpu) {
        std::printf("  CPU %d stacks:%s\n", c, names.c_str());
        for (const char* n : {"irq", "NMI", "DF", "DB", "MCE"})
            EXPECT_NE(names.find(std::string(" ") + n), std::string::npos) << n << " stack of CPU " << c;
    }
    // KQ_UNWIND_PCS=<file>: "pid pc pc ..." per task, to compare with other
    // unwinders (drgn, crash) by hand.
    FILE* pcs = nullptr;
    if (const char* p = std::getenv("KQ_UNWIND_PCS")) pcs = std::fopen(p, "a");
    auto t0 = std::chrono::steady_clock::now();
    for (const Thread& t : tasks.threads) {
        auto frames = lu.unwind(t);
        ++r.tasks;
        if (pcs) {
            std::fprintf(pcs, "%s %lld %s", file.c_str(), (long long)t.id, t.on_cpu ? "oncpu" : "-");
            for (const auto& f : frames) std::fprintf(pcs, " %llx", (unsigned long long)f.pc);
            std::fprintf(pcs, "\n");
        }
        r.max_frames = std::max(r.max_frames, frames.size());
        r.stops[to_string(frames.back().stop)]++;
        for (const auto& f : frames) r.methods[to_string(f.method)]++;
        for (size_t i = 1; i < frames.size(); ++i) {
            r.checks[to_string(frames[i].check)]++;
            if (frames[i].check == ReturnCheck::call_elsewhere || frames[i].check == ReturnCheck::not_after_call ||
                (std::getenv("KQ_UNWIND_VERBOSE") && frames[i].check == ReturnCheck::call_to_thunk))
                r.checks[std::string(to_string(frames[i].check)) + ": " + lu.describe(frames[i - 1]) + " <- " +
                         lu.describe(frames[i])]++;
        }
        std::string text;
        for (const auto& f : frames) {
            char b[64];
            snprintf(b, sizeof b, "    %-13s %-6s %016llx ", to_string(f.method), to_string(f.confidence),
                     (unsigned long long)f.sp);
            text += b + lu.describe(f) + "\n";
        }
        text += "    " + frames.back().stop_text() + "\n";
        if (std::getenv("KQ_UNWIND_VERBOSE"))
            std::printf("  %-16s pid %-6lld cpu %d%s %zu frames, %s\n%s", t.name.c_str(), (long long)t.id, t.cpu,
                        t.on_cpu ? " on-CPU" : "", frames.size(), frames.back().stop_text().c_str(),
                        std::getenv("KQ_UNWIND_VERBOSE")[0] == '2' ? text.c_str() : "");
        if (reached_base(frames)) ++r.base;
        else r.failures.push_back(t.name + " (pid " + std::to_string(t.id) + (t.on_cpu ? ", on CPU" : "") + ")\n" + text);
        if (t.name == "kq_nested") {
            r.nested = text;
            for (const auto& f : frames) r.nested_frames.push_back(lu.describe(f));
        }
    }
    r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (pcs) std::fclose(pcs);

    if (cfi_check) {
        // Every word of the scenario threads' stacks that is a kernel text
        // address, taken as a saved pc with sp just above it: most are
        // stale, many mid-frame. Every such unwind must end within bounds,
        // sp increasing; those that started at a real frame reach the base.
        size_t starts = 0, at_base = 0, longest = 0;
        for (const Thread& t : tasks.threads) {
            if (t.name.rfind("kq_", 0) != 0 && t.id != 1) continue;
            for (uint64_t a = t.stack_base; a + 8 <= t.stack_base + t.stack_size; a += 8) {
                auto w = dump->read_u64(a);
                if (!w || !lu.code_map().is_text(*w)) continue;
                UnwindStart s = UnwindStart::from(t);
                s.on_cpu = false;
                s.pc_exact = false;
                s.regs = RegisterSet();
                s.regs.set(Reg::rip, *w);
                s.regs.set(Reg::rsp, a + 8);
                auto f = lu.unwinder().unwind(s);
                ++starts;
                at_base += reached_base(f);
                longest = std::max(longest, f.size());
                EXPECT_NE(f.back().stop, StopReason::none);
                for (size_t i = 0; i + 1 < f.size(); ++i) {
                    if (f[i].stack == f[i + 1].stack) {
                        EXPECT_LT(f[i].sp, f[i + 1].sp);
                    }
                }
            }
            // The advisory scan: validated return addresses on the stack.
            auto words = lu.unwinder().scan(t, lu.unwind(t));
            size_t n[3] = {};
            for (const auto& w : words) n[static_cast<int>(w.where)]++;
            std::printf("  scan %-10s: %zu return addresses: %zu frames, %zu live, %zu stale\n", t.name.c_str(),
                        words.size(), n[0], n[1], n[2]);
        }
        std::printf("stack words as starting points: %zu unwinds, %zu reached a base, longest %zu frames\n", starts,
                    at_base, longest);
        EXPECT_GT(starts, 20u);

        // The same tasks with DWARF CFI only (no ORC, no guessing): the
        // frames must be ORC's, up to the first assembly frame (entry code,
        // ret_from_fork: no FDE), where CFI ends, or to a stack switch.
        LinuxUnwindOptions o;
        o.unwinder.orc = false;
        o.unwinder.prologue = false;
        o.unwinder.frame_pointers = false;
        o.unwinder.scan_fallback = false;
        LinuxUnwinder cfi_only(k, mods.modules, o);
        size_t same = 0, frames_same = 0, frames_orc = 0;
        for (const Thread& t : tasks.threads) {
            auto a = lu.unwind(t), b = cfi_only.unwind(t);
            size_t n = 0;
            while (n < a.size() && n < b.size() && a[n].pc == b[n].pc && a[n].sp == b[n].sp) ++n;
            frames_same += n;
            frames_orc += a.size();
            // CFI knows nothing of a switch from the IRQ stack back to the
            // task's (call_on_irqstack's inline asm): agreeing up to the
            // switch is all it can do when the dump caught a CPU in an IRQ.
            bool switched = n > 0 && n < a.size() && a[n].stack != a[n - 1].stack;
            bool ok = (n == b.size() && b.back().stop == StopReason::no_unwind_info) || switched;
            same += ok;
            if (!ok) {
                std::printf("  CFI differs for %s after %zu frames: %s (cfi) vs %s (orc)\n", t.name.c_str(), n,
                            n < b.size() ? lu.describe(b[n]).c_str() : b.back().stop_text().c_str(),
                            n < a.size() ? lu.describe(a[n]).c_str() : "end");
            }
        }
        std::printf("CFI only: %zu of %zu tasks give ORC's frames up to the first assembly frame "
                    "(%zu of %zu frames)\n",
                    same, tasks.threads.size(), frames_same, frames_orc);
        EXPECT_EQ(same, tasks.threads.size());
    }
    return r;
}

void check(const char* name, bool cfi_check = false) {
    std::string d = dumps_dir();
    if (d.empty()) GTEST_SKIP() << "set KQ_DUMPS to the lab's dump set to run this test";
    if (!test::vmlinux()) GTEST_SKIP() << "set KQ_VMLINUX";
    Result r = unwind_dump(d + "/" + name, cfi_check);
    std::printf("%s: %zu tasks, %zu reached the base of their stack (%.1f ms, longest %zu frames)\n", name, r.tasks,
                r.base, r.ms, r.max_frames);
    for (auto& [s, n] : r.stops) std::printf("  stop %-22s %zu\n", s.c_str(), n);
    for (auto& [m, n] : r.methods) std::printf("  frames by %-13s %zu\n", m.c_str(), n);
    for (auto& [m, n] : r.checks) std::printf("  return address: %s: %zu\n", m.c_str(), n);
    for (auto& f : r.failures) std::printf("  NOT AT BASE: %s", f.c_str());
    std::printf("  kq_nested:\n%s", r.nested.c_str());
    EXPECT_GT(r.tasks, 50u);
    EXPECT_EQ(r.base, r.tasks);
    // The module frame below kernel frames: cmp callback, sort, then run.
    ASSERT_FALSE(r.nested_frames.empty()) << "no kq_nested task";
    auto pos = [&](const char* fn) -> int {
        for (size_t i = 0; i < r.nested_frames.size(); ++i)
            if (r.nested_frames[i].rfind(fn, 0) == 0) return static_cast<int>(i);
        return -1;
    };
    int cmp = pos("kq_nested_cmp+"), sort = pos("sort_r+"), run = pos("kq_nested_run+");
    EXPECT_GE(cmp, 0);
    EXPECT_GT(sort, cmp);
    EXPECT_GT(run, sort);
    if (cmp >= 0) {
        EXPECT_NE(r.nested_frames[cmp].find("[kq_nested]"), std::string::npos);
    }
}

}  // namespace

TEST(UnwindDumps, KaslrAllTasksReachBase) { check("kaslr.elf", true); }
TEST(UnwindDumps, NoKaslrAllTasksReachBase) { check("nokaslr.elf"); }
TEST(UnwindDumps, KdumpCompressedAllTasksReachBase) { check("kaslr.kdump"); }

// A bitfield layout that does not explain vmlinux's ORC data is refused
// rather than used.
TEST(UnwindDumps, WrongOrcLayoutIsRefused) {
    std::string d = dumps_dir();
    if (d.empty()) GTEST_SKIP() << "set KQ_DUMPS to the lab's dump set to run this test";
    if (!test::vmlinux()) GTEST_SKIP() << "set KQ_VMLINUX";
    const test::Vmlinux* v = test::vmlinux();
    auto dump = Dump::open(d + "/nokaslr.elf");
    LinuxKernel k(*dump, *v->image, v->types(), 0);
    LinuxUnwindOptions o;
    o.orc_bits = OrcLayout::x86_64_signal_bit();
    try {
        LinuxUnwinder lu(k, {}, o);
        ADD_FAILURE() << "a v6.4 layout was accepted for a v6.1 kernel";
    } catch (const Error& e) {
        std::printf("refused: %s\n", e.what());
    }
}
