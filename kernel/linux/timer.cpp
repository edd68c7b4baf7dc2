// Provider "timers": every pending timer_list on every CPU's timer wheel.
//
// Each CPU has timer_bases[NR_BASES] (per-CPU struct timer_base; NR_BASES
// from the symbol's size, the wheel's WHEEL_SIZE from the DWARF array type of
// timer_base.vectors); each vectors[i] is an hlist of timer_list linked by
// `entry`. A base's running_timer (a callback executing right now, already
// off the wheel) is reported too.
//
// A timer whose function is delayed_work_timer_fn (or
// kthread_delayed_work_timer_fn) is the timer of a delayed work item: the
// work is reported here as well, as a work reference whose function is the
// work's, since that is what the kernel will run when the timer fires.
#include <cmath>
#include <cstdio>
#include <optional>

#include "kernel/linux/providers.h"
#include "kernel/list_walk.h"

namespace kq {
namespace {

constexpr size_t kMaxTimers = 1u << 20;  // over all wheels: beyond this the input is not a kernel's

struct TimerLayout {
    uint64_t base_size, nr_bases, vectors, wheel_size, running_timer;
    uint64_t entry, expires, function;

    explicit TimerLayout(const LinuxKernel& k) {
        auto& t = k.types();
        base_size = t.size_or_throw("timer_base");
        vectors = k.off("timer_base", "vectors");
        uint64_t all = t.member_size("timer_base", "vectors").value_or(0);
        uint64_t one = t.member_size("timer_base", "vectors[0]").value_or(0);
        if (!all || !one) throw Error("timer_base.vectors: no array size in DWARF of " + t.file());
        wheel_size = all / one;
        running_timer = k.off("timer_base", "running_timer");
        entry = k.off("timer_list", "entry");
        expires = k.off("timer_list", "expires");
        function = k.off("timer_list", "function");
        // timer_bases is `struct timer_base timer_bases[NR_BASES]`.
        const ElfSymbol* s = k.vmlinux().symbol("timer_bases");
        if (!s) throw Error("per-CPU symbol timer_bases not found in " + k.vmlinux().path());
        nr_bases = s->size / base_size;
        if (nr_bases == 0 || nr_bases > 8 || s->size % base_size)
            throw Error("timer_bases: size " + std::to_string(s->size) + " is not a small array of timer_base (" +
                        std::to_string(base_size) + " bytes)");
    }
};

// A structure embedding a timer_list whose expiry runs a work function:
// struct delayed_work { work; timer; wq; ... }, struct kthread_delayed_work.
struct DelayedKind {
    uint64_t timer_fn = 0;        // runtime address of the timer function
    uint64_t timer = 0;           // offset of the timer_list in the container
    uint64_t func = 0;            // offset of the work function pointer
    std::optional<uint64_t> wq;   // offset of the workqueue_struct pointer
};

std::vector<DelayedKind> delayed_kinds(const LinuxKernel& k) {
    std::vector<DelayedKind> out;
    auto& t = k.types();
    auto add = [&](const char* fn, const char* type, const char* wq_member) {
        auto a = k.find_symbol(fn);
        auto timer = t.offset(type, "timer");
        auto func = t.offset(type, "work.func");
        if (!a || !timer || !func) return;
        DelayedKind d{*a, *timer, *func, std::nullopt};
        if (wq_member) d.wq = t.offset(type, wq_member);
        out.push_back(d);
    };
    add("delayed_work_timer_fn", "delayed_work", "wq");
    add("kthread_delayed_work_timer_fn", "kthread_delayed_work", nullptr);
    return out;
}

// HZ: not in DWARF or VMCOREINFO on x86-64 (CONFIG_HZ is a macro), so it is
// derived from tick_nsec, which the kernel sets to NSEC_PER_SEC / HZ (NTP may
// nudge it by a few ppm). nullopt, with the reason, when it cannot be read.
std::optional<unsigned> kernel_hz(const LinuxKernel& k, std::string& why) {
    auto a = k.find_symbol("tick_nsec");
    if (!a) {
        why = "HZ unknown: no tick_nsec symbol";
        return std::nullopt;
    }
    auto ns = k.mem().read_u64(*a);
    if (!ns || *ns < 100000 || *ns > 100000000) {
        why = "HZ unknown: tick_nsec unreadable or implausible";
        return std::nullopt;
    }
    unsigned hz = static_cast<unsigned>((1000000000ull + *ns / 2) / *ns);
    for (unsigned known : {100u, 250u, 300u, 1000u})
        if (hz == known) return hz;
    why = "HZ unknown: tick_nsec " + std::to_string(*ns) + " ns is no usual CONFIG_HZ";
    return std::nullopt;
}

class WheelReader {
public:
    WheelReader(const SurveyContext& ctx, Survey& out)
        : k_(ctx.kernel), mem_(k_.mem()), L_(k_), delayed_(delayed_kinds(k_)), out_(out) {
        hz_ = kernel_hz(k_, hz_why_);
        auto j = k_.find_symbol("jiffies");
        if (!j) j = k_.find_symbol("jiffies_64");
        if (j) jiffies_ = mem_.read_u64(*j);
        wq_name_ = k_.types().offset("workqueue_struct", "name");
        wq_name_len_ = k_.types().member_size("workqueue_struct", "name").value_or(24);
    }

    void run() {
        int ncpu = k_.nr_cpus();
        int whole = 0;
        for (int cpu = 0; cpu < ncpu; ++cpu) {
            bool ok = true;
            uint64_t bases = k_.per_cpu("timer_bases", cpu);
            for (uint64_t b = 0; b < L_.nr_bases; ++b) ok &= base(cpu, b, bases + b * L_.base_size);
            whole += ok;
        }
        std::string covered = std::to_string(whole) + "/" + std::to_string(ncpu) + " CPUs' timer wheels, " +
                std::to_string(pending_) + " pending timers";
        if (delayed_count_) covered += " (" + std::to_string(delayed_count_) + " of them delayed work)";
        if (running_) covered += ", " + std::to_string(running_) + " running";
        out_.coverage.push_back({"timers", covered, problems_.empty(), problems_.summary()});
    }

private:
    // One timer_base; false if some of it could not be read.
    bool base(int cpu, uint64_t b, uint64_t addr) {
        std::string subject = "CPU " + std::to_string(cpu) + " timer wheel (base " + std::to_string(b) + ")";
        std::vector<uint64_t> heads(L_.wheel_size);
        if (!mem_.read_exact(addr + L_.vectors, heads.data(), heads.size() * 8)) {
            problems_.add(subject + ": unreadable at " + addr_text(addr));
            return false;
        }
        bool ok = true;
        for (size_t i = 0; i < heads.size(); ++i) {
            if (!heads[i]) continue;
            size_t left = kMaxTimers > pending_ ? kMaxTimers - pending_ : 0;
            auto w = walk_hlist(mem_, heads[i], L_.entry, [&](uint64_t t) {
                ++pending_;
                timer(t, subject, "");
                return true;
            }, left);
            ok &= problems_.check(subject + " bucket " + std::to_string(i), w);
        }
        if (auto r = mem_.read_u64(addr + L_.running_timer); r && *r) {
            ++running_;
            timer(*r, subject, "its function is running now");
        } else if (!r) {
            problems_.add(subject + ": running_timer unreadable");
            ok = false;
        }
        return ok;
    }

    void timer(uint64_t t, const std::string& subject, const std::string& running) {
        KernelRef r;
        r.kind = RefKind::timer;
        r.object = t;
        r.subject = subject;
        auto fn = mem_.read_u64(t + L_.function);
        auto expires = mem_.read_u64(t + L_.expires);
        if (!fn || !expires) {
            problems_.add(subject + ": timer_list at " + addr_text(t) + " unreadable");
            r.detail = "unreadable timer_list";
            out_.refs.push_back(std::move(r));
            return;
        }
        r.func = *fn;
        r.detail = running.empty() ? expiry(*expires) : running;
        out_.refs.push_back(r);
        for (const auto& d : delayed_)
            if (*fn == d.timer_fn) work(t, d, r, *expires);
    }

    // The work item around a delayed work timer.
    void work(uint64_t t, const DelayedKind& d, const KernelRef& timer, uint64_t expires) {
        ++delayed_count_;
        uint64_t dw = t - d.timer;
        KernelRef r;
        r.kind = RefKind::work;
        r.object = dw;
        r.subject = timer.subject;
        std::string on;
        if (d.wq && wq_name_)
            if (auto wq = mem_.read_u64(dw + *d.wq); wq && *wq) {
                std::string name = mem_.read_cstr(*wq + *wq_name_, wq_name_len_);
                if (!name.empty()) on = " on workqueue " + name;
            }
        auto fn = mem_.read_u64(dw + d.func);
        if (!fn) {
            problems_.add(timer.subject + ": delayed work at " + addr_text(dw) + " unreadable");
            r.detail = "unreadable delayed work";
        } else {
            r.func = *fn;
            r.detail = "delayed" + on + ", timer " + expiry(expires);
        }
        out_.refs.push_back(std::move(r));
    }

    std::string expiry(uint64_t expires) const {
        std::string s = "expires at jiffies " + std::to_string(expires);
        if (!jiffies_) return s + " (jiffies unreadable)";
        int64_t delta = static_cast<int64_t>(expires - *jiffies_);  // jiffies wrap: time_after()
        if (!hz_) return s + " (in " + std::to_string(delta) + " jiffies; " + hz_why_ + ")";
        char b[64];
        snprintf(b, sizeof b, delta >= 0 ? " (in %.1f s)" : " (overdue by %.1f s)", std::abs(double(delta)) / *hz_);
        return s + b;
    }

    const LinuxKernel& k_;
    MemorySource& mem_;
    TimerLayout L_;
    std::vector<DelayedKind> delayed_;
    Survey& out_;
    std::optional<unsigned> hz_;
    std::string hz_why_;
    std::optional<uint64_t> jiffies_;
    std::optional<uint64_t> wq_name_;
    uint64_t wq_name_len_ = 24;
    size_t pending_ = 0, running_ = 0, delayed_count_ = 0;
    WalkProblems problems_;
};

}  // namespace

void survey_timers(const SurveyContext& ctx, Survey& out) { WheelReader(ctx, out).run(); }

}  // namespace kq
