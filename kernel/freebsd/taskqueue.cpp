// Provider "taskqueues": every task queued on a taskqueue (tq_queue) or
// being run by one of its threads (tq_active -> tb_running): the task's
// function and context are what the queue will call.
//
// The kernel keeps no list of taskqueues. They are found two ways: the
// system's own queues through their global pointers (taskqueue_thread,
// taskqueue_swi, taskqueue_fast ...: every 8-byte kernel variable named
// taskqueue_*), and every other queue through its threads, which sleep on
// the queue itself (taskqueue_thread_loop: the wait channel is the struct
// taskqueue, and the queue's tq_threads[] lists the thread). A queue all of
// whose threads are busy at dump time, and that no global names, is not seen.
#include <set>

#include "kernel/freebsd/providers.h"
#include "kernel/freebsd/queue_walk.h"

namespace kq::fbsd {
namespace {

constexpr int64_t kMaxQueueThreads = 4096;
constexpr uint64_t TB_DRAIN_WAITER = 1;  // a drain's marker in tq_active, not a task

// Does the sleeping thread `td` sleep on `tq` as one of its threads?
bool is_queue_of(const FreebsdKernel& k, uint64_t tq, uint64_t td) {
    auto n = k.read_int(tq, "taskqueue", "tq_tcount");
    auto threads = k.read_ptr(tq, "taskqueue", "tq_threads");
    if (!n || !threads || !*threads || *n <= 0 || *n > kMaxQueueThreads) return false;
    for (int64_t i = 0; i < *n; ++i)
        if (k.mem().read_u64(*threads + 8 * i) == td) return true;
    return false;
}

}  // namespace

void survey_taskqueues(const FreebsdSurveyContext& ctx, Survey& out) {
    const FreebsdKernel& k = ctx.kernel;
    MemorySource& mem = k.mem();
    const uint64_t o_next = k.off("task", "ta_link.stqe_next");
    const uint64_t o_busy = k.off("taskqueue_busy", "tb_link.tqe_next");
    WalkProblems problems;

    std::vector<uint64_t> queues;
    std::set<uint64_t> seen;
    size_t globals = 0;
    for (const ElfSymbol& s : k.image().symbols()) {
        if (s.size != 8 || s.name.rfind("taskqueue_", 0) != 0 || s.type != 1 /* STT_OBJECT */) continue;
        auto tq = mem.read_u64(s.value);
        if (tq && *tq && seen.insert(*tq).second) queues.push_back(*tq), ++globals;
    }
    for (const Thread& t : ctx.threads.threads) {
        auto wchan = k.read_ptr(t.task, "thread", "td_wchan");
        if (wchan && *wchan && !seen.count(*wchan) && is_queue_of(k, *wchan, t.task)) {
            seen.insert(*wchan);
            queues.push_back(*wchan);
        }
    }

    size_t pending = 0, running = 0;
    for (uint64_t tq : queues) {
        const std::string subject = "taskqueue " + k.read_name(tq, "taskqueue", "tq_name");
        auto task_ref = [&](uint64_t task, const std::string& what) {
            KernelRef r;
            r.kind = RefKind::work;
            r.object = task;
            r.func = k.read_ptr(task, "task", "ta_func").value_or(0);
            r.data = k.read_ptr(task, "task", "ta_context").value_or(0);
            r.subject = subject;
            r.detail = what;
            out.refs.push_back(std::move(r));
        };
        WalkResult q = walk_queue_head(mem, tq + k.off("taskqueue", "tq_queue"), o_next, [&](uint64_t task) {
            const int64_t n = k.read_int(task, "task", "ta_pending").value_or(0);
            task_ref(task, "queued" + (n > 1 ? " (" + std::to_string(n) + " times)" : std::string()));
            ++pending;
            return true;
        });
        problems.check(subject + " queue", q);
        WalkResult a = walk_queue_head(mem, tq + k.off("taskqueue", "tq_active"), o_busy, [&](uint64_t tb) {
            auto task = k.read_ptr(tb, "taskqueue_busy", "tb_running");
            if (!task) problems.add(subject + ": an active entry is unreadable");
            else if (*task && *task != TB_DRAIN_WAITER) task_ref(*task, "running now"), ++running;
            return true;
        });
        problems.check(subject + " active list", a);
    }
    Coverage c{"taskqueues",
               std::to_string(queues.size()) + " taskqueues (" + std::to_string(globals) + " global, " +
                   std::to_string(queues.size() - globals) + " found by their sleeping threads), " +
                   std::to_string(pending) + " tasks queued, " + std::to_string(running) + " running",
               problems.empty(), problems.summary()};
    out.coverage.push_back(std::move(c));
}

}  // namespace kq::fbsd
