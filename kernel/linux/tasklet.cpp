// Provider "tasklets": every scheduled tasklet on every CPU.
//
// Each CPU queues its scheduled tasklets on two per-CPU lists, tasklet_vec
// (TASKLET_SOFTIRQ) and tasklet_hi_vec (HI_SOFTIRQ), each a struct
// tasklet_head {head, tail}: `head` points to the first tasklet_struct, the
// others follow by `next` (NULL-terminated), and `tail` points to the last
// one's `next` (to `head` when the list is empty). Since Linux 5.9 a tasklet
// runs either func(data) or, with use_callback set, callback(t); the two
// share a union, so the word read is the same, and use_callback only says
// which of them it is.
//
// Reported: one tasklet reference per queued tasklet, its function as func,
// the tasklet_struct as object, "CPU n tasklet_vec" as subject. A list whose
// chain ends before the word its tail points to has lost tasklets: that CPU's
// list is a coverage gap. Not seen: tasklets that exist but are not scheduled
// (the kernel keeps no list of them) and those tasklet_action() has already
// taken off the list to run (the running one is on that CPU's stack).
#include <optional>
#include <string>

#include "kernel/linux/providers.h"
#include "kernel/list_walk.h"

namespace kq {
namespace {

constexpr size_t kMaxTasklets = 1u << 20;  // over all lists: beyond this the input is not a kernel's

struct TaskletLayout {
    uint64_t head, tail;                           // in tasklet_head
    uint64_t next, state, count, use_callback, func;  // in tasklet_struct
    std::optional<int64_t> sched_bit, run_bit;

    explicit TaskletLayout(const LinuxKernel& k) {
        head = k.off("tasklet_head", "head");
        tail = k.off("tasklet_head", "tail");
        next = k.off("tasklet_struct", "next");
        // The chain is walked as a NULL-terminated list of `next` words, each
        // pointing at the next tasklet_struct itself.
        if (next != 0) throw Error("tasklet_struct.next is not its first member in " + k.types().file());
        state = k.off("tasklet_struct", "state");
        count = k.off("tasklet_struct", "count");
        use_callback = k.off("tasklet_struct", "use_callback");
        func = k.off("tasklet_struct", "func");  // the union's other member, callback, is the same word
        sched_bit = k.types().enumerator("TASKLET_STATE_SCHED");
        run_bit = k.types().enumerator("TASKLET_STATE_RUN");
    }
};

class TaskletReader {
public:
    TaskletReader(const SurveyContext& ctx, Survey& out) : k_(ctx.kernel), mem_(k_.mem()), L_(k_), out_(out) {}

    void run() {
        int ncpu = k_.nr_cpus();
        int whole = 0;
        for (int cpu = 0; cpu < ncpu; ++cpu) {
            bool ok = true;
            for (const char* vec : {"tasklet_vec", "tasklet_hi_vec"}) ok &= list(cpu, vec);
            whole += ok;
        }
        std::string covered = std::to_string(whole) + "/" + std::to_string(ncpu) +
                              " CPUs' tasklet_vec and tasklet_hi_vec, " + std::to_string(queued_) +
                              " scheduled tasklets; not seen: tasklets not scheduled, and those taken off "
                              "the list to run";
        out_.coverage.push_back({"tasklets", covered, problems_.empty(), problems_.summary()});
    }

private:
    bool list(int cpu, const char* vec) {
        std::string subject = "CPU " + std::to_string(cpu) + " " + vec;
        uint64_t h = k_.per_cpu(vec, cpu);
        auto first = mem_.read_u64(h + L_.head);
        auto tail = mem_.read_u64(h + L_.tail);
        if (!first || !tail) {
            problems_.add(subject + ": unreadable at " + addr_text(h));
            return false;
        }
        // The tail is reached when it is the head's own word or a visited tasklet's `next`.
        bool tail_seen = *tail == h + L_.head;
        size_t left = kMaxTasklets > queued_ ? kMaxTasklets - queued_ : 0;
        auto w = walk_hlist(mem_, *first, 0, [&](uint64_t t) {
            ++queued_;
            tail_seen |= *tail == t + L_.next;
            tasklet(t, subject);
            return true;
        }, left);
        if (!problems_.check(subject, w)) return false;
        if (!tail_seen) {
            problems_.add(subject + ": the chain ends before its tail " + addr_text(*tail) + " (tasklets lost)");
            return false;
        }
        return true;
    }

    void tasklet(uint64_t t, const std::string& subject) {
        KernelRef r{RefKind::tasklet, 0, t, 0, subject, "", {}};
        auto fn = mem_.read_u64(t + L_.func);
        auto cb = mem_.read_as<uint8_t>(t + L_.use_callback);
        auto state = mem_.read_u64(t + L_.state);
        auto count = mem_.read_as<int32_t>(t + L_.count);
        if (!fn || !cb || !state || !count) {
            problems_.add(subject + ": tasklet_struct at " + addr_text(t) + " unreadable");
            r.detail = "unreadable tasklet_struct";
            out_.refs.push_back(std::move(r));
            return;
        }
        r.func = *fn;
        r.detail = *cb ? "scheduled; runs callback(t)" : "scheduled; runs func(data)";
        if (L_.run_bit && (*state >> *L_.run_bit & 1)) r.detail += "; running now";
        if (L_.sched_bit && !(*state >> *L_.sched_bit & 1)) r.detail += "; TASKLET_STATE_SCHED not set";
        if (*count) r.detail += "; disabled (count " + std::to_string(*count) + ")";
        out_.refs.push_back(std::move(r));
    }

    const LinuxKernel& k_;
    MemorySource& mem_;
    TaskletLayout L_;
    Survey& out_;
    size_t queued_ = 0;
    WalkProblems problems_;
};

}  // namespace

void survey_tasklets(const SurveyContext& ctx, Survey& out) { TaskletReader(ctx, out).run(); }

}  // namespace kq
