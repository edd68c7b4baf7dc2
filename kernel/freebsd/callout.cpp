// Provider "callouts": every pending callout on every CPU's wheel (struct
// callout_cpu: the cc_callwheel buckets, and cc_expireq, the expired ones
// waiting for the softclock thread) and the callout each CPU is running
// (cc_exec_entity[]: the softclock thread's and the one run directly from
// the clock interrupt). A callout's function, the callout itself and its
// argument are what the kernel will touch when it fires.
#include <cstdio>

#include "kernel/freebsd/providers.h"
#include "kernel/freebsd/queue_walk.h"

namespace kq::fbsd {
namespace {

constexpr int64_t kMaxBuckets = 1 << 22;

// CPU n's struct callout_cpu: per-CPU data (DPCPU) in FreeBSD 12 and later,
// an array indexed by CPU before.
uint64_t callout_cpu(const FreebsdKernel& k, int cpu) {
    if (k.find_symbol("pcpu_entry_cc_cpu")) return k.dpcpu("pcpu_entry_cc_cpu", cpu);
    if (auto a = k.find_symbol("cc_cpu")) return *a + cpu * k.types().size_or_throw("callout_cpu");
    throw Error("the kernel has no callout wheels (neither pcpu_entry_cc_cpu nor cc_cpu)");
}

// sbintime_t: seconds in 32.32 fixed point.
std::string sbt_text(int64_t sbt) {
    char b[48];
    snprintf(b, sizeof b, "%.3f s", static_cast<double>(sbt) / 4294967296.0);
    return b;
}

KernelRef callout_ref(const FreebsdKernel& k, uint64_t c, const std::string& subject, const std::string& what,
                      bool pending = true) {
    KernelRef r;
    r.kind = RefKind::timer;
    r.object = c;
    r.func = k.read_ptr(c, "callout", "c_func").value_or(0);
    r.data = k.read_ptr(c, "callout", "c_arg").value_or(0);
    r.subject = subject;
    r.detail = what;
    if (auto t = k.read_int(c, "callout", "c_time"); t && pending) r.detail += ", due at " + sbt_text(*t) + " of uptime";
    return r;
}

}  // namespace

void survey_callouts(const FreebsdSurveyContext& ctx, Survey& out) {
    const FreebsdKernel& k = ctx.kernel;
    MemorySource& mem = k.mem();
    const int64_t buckets = mem.read_as<int32_t>(k.symbol("callwheelsize")).value_or(-1);
    if (buckets <= 0 || buckets > kMaxBuckets) throw Error("callwheelsize unreadable or implausible");
    const uint64_t bucket_size = k.types().size_or_throw("callout_list");
    const uint64_t o_le = k.off("callout", "c_links.le.le_next");
    const uint64_t o_tqe = k.off("callout", "c_links.tqe.tqe_next");
    const uint64_t o_exec = k.off("callout_cpu", "cc_exec_entity");
    const uint64_t exec_size = k.types().size_or_throw("cc_exec");
    const uint64_t n_exec = k.types().member_size("callout_cpu", "cc_exec_entity").value_or(exec_size) / exec_size;
    const bool last_func = k.types().offset("cc_exec", "cc_last_func").has_value();

    WalkProblems problems;
    size_t pending = 0, running = 0, wheels = 0;
    for (int cpu : k.cpus()) {
        const std::string subject = "CPU " + std::to_string(cpu) + " callout wheel";
        uint64_t cc;
        try {
            cc = callout_cpu(k, cpu);
        } catch (const Error& e) {
            problems.add("CPU " + std::to_string(cpu) + ": " + e.what());
            continue;
        }
        auto wheel = k.read_ptr(cc, "callout_cpu", "cc_callwheel");
        if (!wheel || !*wheel) {
            problems.add(subject + ": cc_callwheel unreadable");
            continue;
        }
        ++wheels;
        auto visit = [&](const std::string& what) {
            return [&, what](uint64_t c) {
                out.refs.push_back(callout_ref(k, c, subject, what));
                ++pending;
                return true;
            };
        };
        for (int64_t b = 0; b < buckets; ++b) {
            auto first = mem.read_u64(*wheel + b * bucket_size);
            if (!first) {
                problems.add(subject + ": bucket " + std::to_string(b) + " unreadable");
                continue;
            }
            if (*first) problems.check(subject + " bucket " + std::to_string(b),
                                       walk_queue(mem, *first, o_le, visit("pending in bucket " + std::to_string(b))));
        }
        problems.check(subject + " expired queue",
                       walk_queue_head(mem, cc + k.off("callout_cpu", "cc_expireq"), o_tqe, visit("expired, waiting to run")));

        for (uint64_t i = 0; i < n_exec; ++i) {
            const uint64_t ce = cc + o_exec + i * exec_size;
            auto cur = k.read_ptr(ce, "cc_exec", "cc_curr");
            if (!cur) {
                problems.add(subject + ": cc_exec_entity[" + std::to_string(i) + "] unreadable");
                continue;
            }
            if (!*cur) continue;
            KernelRef r = callout_ref(k, *cur, subject, i == 0 ? "running now in the softclock thread"
                                                               : "running now from the clock interrupt",
                                       false);
            // The function and argument being run, as the wheel read them
            // (the callout may have been reset since).
            if (last_func) {
                if (auto f = k.read_ptr(ce, "cc_exec", "cc_last_func"); f && *f) r.func = *f;
                if (auto a = k.read_ptr(ce, "cc_exec", "cc_last_arg"); a && *a) r.data = *a;
            }
            out.refs.push_back(std::move(r));
            ++running;
        }
    }
    Coverage c{"callouts",
               std::to_string(wheels) + "/" + std::to_string(k.cpus().size()) + " CPUs' callout wheels (" +
                   std::to_string(buckets) + " buckets each), " + std::to_string(pending) + " pending, " +
                   std::to_string(running) + " running",
               problems.empty(), problems.summary()};
    out.coverage.push_back(std::move(c));
}

}  // namespace kq::fbsd
