// Provider "hrtimers": every armed hrtimer on every CPU.
//
// Each CPU has hrtimer_bases (per-CPU struct hrtimer_cpu_base) with
// clock_base[HRTIMER_MAX_CLOCK_BASES] (the count from the DWARF array type);
// each hrtimer_clock_base keeps its armed timers in `active`, a timerqueue
// (rb_root_cached) of timerqueue_node embedded in struct hrtimer as `node`.
// The tree is walked in expiry order, bounded and cycle-safe. A base's
// `running` hrtimer (a callback executing right now, off the tree) is
// reported too.
#include <cmath>
#include <cstdio>
#include <optional>

#include "kernel/linux/providers.h"
#include "kernel/list_walk.h"

namespace kq {
namespace {

constexpr size_t kMaxHrtimers = 1u << 20;  // over all CPUs and bases

struct HrtimerLayout {
    uint64_t clock_base, clock_base_size, nr_clock_bases;
    uint64_t root, running, clockid, offset;  // in hrtimer_clock_base
    uint64_t rb_left, rb_right;
    uint64_t node, expires, function;         // in hrtimer
    int64_t first_soft;                       // index of the first softirq base

    explicit HrtimerLayout(const LinuxKernel& k) {
        auto& t = k.types();
        const char* C = "hrtimer_clock_base";
        clock_base = k.off("hrtimer_cpu_base", "clock_base");
        uint64_t all = t.member_size("hrtimer_cpu_base", "clock_base").value_or(0);
        clock_base_size = t.member_size("hrtimer_cpu_base", "clock_base[0]").value_or(0);
        if (!all || !clock_base_size)
            throw Error("hrtimer_cpu_base.clock_base: no array size in DWARF of " + t.file());
        nr_clock_bases = all / clock_base_size;
        root = k.off(C, "active.rb_root.rb_root.rb_node");
        running = k.off(C, "running");
        clockid = k.off(C, "clockid");
        offset = k.off(C, "offset");
        rb_left = k.off("rb_node", "rb_left");
        rb_right = k.off("rb_node", "rb_right");
        node = k.off("hrtimer", "node.node");
        expires = k.off("hrtimer", "node.expires");
        function = k.off("hrtimer", "function");
        first_soft = t.enumerator("HRTIMER_BASE_MONOTONIC_SOFT").value_or(-1);
    }
};

std::string clock_name(int32_t id) {
    switch (id) {
        case 0: return "CLOCK_REALTIME";
        case 1: return "CLOCK_MONOTONIC";
        case 7: return "CLOCK_BOOTTIME";
        case 11: return "CLOCK_TAI";
    }
    return "clock " + std::to_string(id);
}

class HrtimerReader {
public:
    HrtimerReader(const SurveyContext& ctx, Survey& out) : k_(ctx.kernel), mem_(k_.mem()), L_(k_), out_(out) {
        // CLOCK_MONOTONIC now, to within a tick: when jiffies last advanced.
        if (auto a = k_.find_symbol("last_jiffies_update")) now_ = mem_.read_as<int64_t>(*a);
    }

    void run() {
        int ncpu = k_.nr_cpus();
        int whole = 0;
        for (int cpu = 0; cpu < ncpu; ++cpu) {
            uint64_t cb = k_.per_cpu("hrtimer_bases", cpu);
            bool ok = true;
            for (uint64_t b = 0; b < L_.nr_clock_bases; ++b)
                ok &= base(cpu, b, cb + L_.clock_base + b * L_.clock_base_size);
            whole += ok;
        }
        std::string covered = std::to_string(whole) + "/" + std::to_string(ncpu) + " CPUs' hrtimer bases (" +
                std::to_string(L_.nr_clock_bases) + " clocks each), " + std::to_string(armed_) +
                " armed hrtimers";
        if (running_) covered += ", " + std::to_string(running_) + " running";
        out_.coverage.push_back({"hrtimers", covered, problems_.empty(), problems_.summary()});
    }

private:
    bool base(int cpu, uint64_t b, uint64_t addr) {
        std::string subject = "CPU " + std::to_string(cpu) + " hrtimer base " + std::to_string(b);
        auto root = mem_.read_u64(addr + L_.root);
        auto running = mem_.read_u64(addr + L_.running);
        auto id = mem_.read_as<int32_t>(addr + L_.clockid);
        if (!root || !running || !id) {
            problems_.add(subject + ": unreadable at " + addr_text(addr));
            return false;
        }
        std::string clock = clock_name(*id);
        if (L_.first_soft >= 0 && int64_t(b) >= L_.first_soft) clock += " (softirq)";
        // The base's clock is CLOCK_MONOTONIC plus its offset.
        std::optional<int64_t> now;
        if (now_)
            if (auto off = mem_.read_as<int64_t>(addr + L_.offset)) now = *now_ + *off;
        size_t left = kMaxHrtimers > armed_ ? kMaxHrtimers - armed_ : 0;
        auto w = walk_rbtree(mem_, *root, L_.rb_left, L_.rb_right, L_.node, [&](uint64_t t) {
            ++armed_;
            timer(t, subject, clock, now, false);
            return true;
        }, left);
        if (*running) {
            ++running_;
            timer(*running, subject, clock, now, true);
        }
        return problems_.check(subject + " (" + clock + ")", w);
    }

    void timer(uint64_t t, const std::string& subject, const std::string& clock, std::optional<int64_t> now,
               bool running) {
        KernelRef r;
        r.kind = RefKind::hrtimer;
        r.object = t;
        r.subject = subject;
        auto fn = mem_.read_u64(t + L_.function);
        auto expires = mem_.read_as<int64_t>(t + L_.expires);
        if (!fn || !expires) {
            problems_.add(subject + ": hrtimer at " + addr_text(t) + " unreadable");
            r.detail = "unreadable hrtimer";
            out_.refs.push_back(std::move(r));
            return;
        }
        r.func = *fn;
        if (running) {
            r.detail = "its function is running now (" + clock + ")";
        } else {
            r.detail = "expires at " + std::to_string(*expires) + " ns on " + clock;
            if (now) {
                char b[64];
                int64_t delta = *expires - *now;
                snprintf(b, sizeof b, delta >= 0 ? " (in %.1f s)" : " (overdue by %.1f s)",
                         std::abs(double(delta)) / 1e9);
                r.detail += b;
            }
        }
        out_.refs.push_back(std::move(r));
    }

    const LinuxKernel& k_;
    MemorySource& mem_;
    HrtimerLayout L_;
    Survey& out_;
    std::optional<int64_t> now_;
    size_t armed_ = 0, running_ = 0;
    WalkProblems problems_;
};

}  // namespace

void survey_hrtimers(const SurveyContext& ctx, Survey& out) { HrtimerReader(ctx, out).run(); }

}  // namespace kq
