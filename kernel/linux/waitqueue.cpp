// Provider "wait queues": every sleeping task (S, D, I) that is queued on a
// wait queue, and the queue's head.
//
// A task that sleeps on a wait queue has put a struct wait_queue_entry on its
// own stack (DEFINE_WAIT / init_wait_entry in wait_event*, wait_on_bit ...):
// its `private` is the task and its `entry` list_head is linked into the
// head's `head` list. The stack of each sleeping task is scanned for such
// entries: an aligned word equal to the task_struct address, at the offset of
// `private` in a wait_queue_entry whose `entry` is consistently linked
// (entry.next->prev and entry.prev->next lead back to it, and it is not
// linked to itself, which would be an entry already dequeued).
//
// The head is found by walking that circular list once. Every node of it is
// the `entry` of a wait_queue_entry except one, the head. A node is taken for
// an entry when the word where that entry's `func` would be is an address in
// kernel or module text: every queued entry has a wake function, while for
// the head that word falls inside wait_queue_head.lock (a spinlock value, never
// a text address). The queue must have exactly one such node; otherwise the
// task is counted as unresolved (a coverage gap).
//
// The same is done for simple wait queues (struct swait_queue, whose `task` is
// the sleeper; completions use them): there every entry lies on the stack of
// the task it names, and the head is the node that does not.
//
// Reported: a wait_queue reference per (task, head), the head as object; and a
// wait_entry reference for each entry on those queues whose wake function is
// not one of the kernel's generic ones (the entries of epoll, of a driver's
// own callback ...), the entry as object and its function as func. Entries
// that are not on a task's stack are seen only when they share a queue with a
// sleeping task.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "kernel/linux/providers.h"
#include "kernel/linux/stack_wait.h"

namespace kq {

// ---- stack-resident waiters, shared with lock.cpp (stack_wait.h) -----------
namespace stack_wait {

// Off the CPU in a sleep: S, D or I (D with TASK_NOLOAD).
bool is_sleeping(const Thread& t) { return t.state == "S" || t.state == "D" || t.state == "I"; }

// The list nodes of waiter structs on t's own stack: for every aligned word
// equal to t.task, the list_head `list_off - task_off` bytes from it, when it
// is on the stack and linked both ways (next->prev and prev->next lead back to
// it, and it is not linked to itself). nullopt: the stack could not be read.
std::optional<std::vector<uint64_t>> stack_waiters(MemorySource& mem, const Thread& t, uint64_t task_off,
                                                   uint64_t list_off) {
    if (!t.stack_base || t.stack_size < 16 || t.stack_size > (1u << 20)) return std::nullopt;
    std::vector<uint64_t> words(t.stack_size / 8);
    if (!mem.read_exact(t.stack_base, words.data(), words.size() * 8)) return std::nullopt;
    std::vector<uint64_t> out;
    for (size_t i = 0; i < words.size(); ++i) {
        if (words[i] != t.task) continue;
        uint64_t node = t.stack_base + i * 8 - task_off + list_off;
        // The list_head must be on the stack too, aligned.
        if (node - t.stack_base > t.stack_size - 16 || (node - t.stack_base) % 8) continue;
        size_t ni = (node - t.stack_base) / 8;
        uint64_t next = words[ni], prev = words[ni + 1];
        if (next == node || !next || !prev) continue;  // dequeued or never queued
        auto back = mem.read_u64(next + 8), fwd = mem.read_u64(prev);
        if (back == node && fwd == node) out.push_back(node);
    }
    return out;
}

// Walks the circular list through `node` (at most 2^16 nodes, cycle-checked)
// and returns its head: the one node for which is_entry is false. `entries`
// gets the other nodes in queue order (from head->next). 0 and `problem` when
// the list cannot be read, does not close, or has no single head.
uint64_t ring_head(MemorySource& mem, uint64_t node, const std::function<bool(uint64_t)>& is_entry,
                   std::vector<uint64_t>& entries, std::string& problem) {
    constexpr size_t kLimit = 1u << 16;
    std::vector<uint64_t> ring{node};
    std::unordered_set<uint64_t> seen{node};
    for (auto next = mem.read_u64(node);; next = mem.read_u64(ring.back())) {
        if (!next) { problem = "unreadable list pointer"; return 0; }
        if (*next == node) break;
        if (!*next) { problem = "NULL list pointer"; return 0; }
        if (!seen.insert(*next).second) { problem = "list loops without returning to the waiter"; return 0; }
        if (ring.size() >= kLimit) { problem = "list longer than " + std::to_string(kLimit); return 0; }
        ring.push_back(*next);
    }
    size_t heads = 0, at = 0;
    for (size_t i = 0; i < ring.size(); ++i)
        if (!is_entry(ring[i])) ++heads, at = i;
    if (heads != 1) {
        problem = std::to_string(heads) + " candidate heads on a list of " + std::to_string(ring.size());
        return 0;
    }
    entries.clear();
    for (size_t i = 1; i < ring.size(); ++i) entries.push_back(ring[(at + i) % ring.size()]);
    return ring[at];
}

// A predicate for ring_head: the node's `task` slot (task_off - list_off from
// it) names a known task and the node lies on that task's stack.
std::function<bool(uint64_t)> on_own_stack(MemorySource& mem, const std::vector<Thread>& threads, uint64_t task_off,
                                           uint64_t list_off) {
    auto by_task = std::make_shared<std::unordered_map<uint64_t, const Thread*>>();
    for (const auto& t : threads) by_task->emplace(t.task, &t);
    return [&mem, by_task, task_off, list_off](uint64_t node) {
        auto task = mem.read_u64(node - list_off + task_off);
        if (!task) return false;
        auto it = by_task->find(*task);
        return it != by_task->end() && node - it->second->stack_base < it->second->stack_size;
    };
}

// [_stext, _etext) at run time.
Range kernel_text(const LinuxKernel& k) {
    auto lo = k.find_symbol("_stext"), hi = k.find_symbol("_etext");
    if (!lo || !hi || *hi <= *lo) throw Error("_stext/_etext not in the symbol table of " + k.vmlinux().path());
    return {*lo, *hi - *lo, "kernel text"};
}

namespace {
std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
    std::string s;
    for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? sep : "") + v[i];
    if (v.size() > 8) s += sep + std::string("and ") + std::to_string(v.size() - 8) + " more";
    return s;
}
}  // namespace

// The coverage of a stack-scanning provider: complete unless some sleeping
// task's stack was unreadable or some queue it is on could not be resolved.
Coverage stack_coverage(const char* provider, const std::string& covered, const std::vector<std::string>& unreadable,
                        const std::string& what, const std::vector<std::string>& unresolved) {
    Coverage c{provider, covered, true, ""};
    std::vector<std::string> gaps;
    if (!unreadable.empty()) gaps.push_back("unreadable stack of " + join(unreadable));
    if (!unresolved.empty()) gaps.push_back(what + " not resolved for " + join(unresolved));
    if (!gaps.empty()) {
        c.complete = false;
        c.gap = join(gaps, "; ");
    }
    return c;
}

}  // namespace stack_wait

// -----------------------------------------------------------------------------

namespace {

using namespace stack_wait;

std::string hex(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%#llx", static_cast<unsigned long long>(v));
    return b;
}

struct WaitLayout {
    uint64_t private_, func, entry, head;     // wait_queue_entry, wait_queue_head.head
    uint64_t sq_task, sq_list, sqh_list;      // swait_queue, swait_queue_head.task_list

    explicit WaitLayout(const LinuxKernel& k) {
        private_ = k.off("wait_queue_entry", "private");
        func = k.off("wait_queue_entry", "func");
        entry = k.off("wait_queue_entry", "entry");
        head = k.off("wait_queue_head", "head");
        sq_task = k.off("swait_queue", "task");
        sq_list = k.off("swait_queue", "task_list");
        sqh_list = k.off("swait_queue_head", "task_list");
    }
};

class Reader {
public:
    Reader(const SurveyContext& ctx, Survey& out) : ctx_(ctx), k_(ctx.kernel), mem_(k_.mem()), L_(k_), out_(out) {
        text_.push_back(kernel_text(k_));
        for (const auto& m : ctx.modules)
            for (const auto& r : m.ranges)
                if (r.what == "text" || r.what == "init text") text_.push_back(r);
        for (const char* f : {"default_wake_function", "autoremove_wake_function", "woken_wake_function",
                              "wake_bit_function", "var_wake_function", "pollwake"})
            if (auto a = k_.find_symbol(f)) generic_.insert(*a);
    }

    void run() {
        auto swaiter = on_own_stack(mem_, ctx_.threads, L_.sq_task, L_.sq_list);
        auto waiter = [&](uint64_t node) {
            auto f = mem_.read_u64(node - L_.entry + L_.func);
            return f && is_text(*f);
        };
        for (const auto& t : ctx_.threads) {
            if (!is_sleeping(t)) continue;
            ++sleeping_;
            auto wq = stack_waiters(mem_, t, L_.private_, L_.entry);
            auto sq = stack_waiters(mem_, t, L_.sq_task, L_.sq_list);
            if (!wq || !sq) {
                unreadable_.push_back(task_label(t));
                continue;
            }
            // A wait_queue_entry has its func (text) just before its list node, so
            // a node found both ways is a swait_queue whose task pointer happens to
            // be spilled just below it too (rcu_gp_kthread's stack does this).
            std::erase_if(*wq, [&](uint64_t n) { return std::find(sq->begin(), sq->end(), n) != sq->end(); });
            size_t before = queued_;
            for (uint64_t n : *wq) queue(t, n, waiter, L_.head, false);
            for (uint64_t n : *sq) queue(t, n, swaiter, L_.sqh_list, true);
            tasks_on_queues_ += queued_ > before;
        }
        out_.coverage.push_back(stack_coverage(
            "wait queues",
            std::to_string(sleeping_) + " sleeping tasks' stacks scanned, " + std::to_string(tasks_on_queues_) +
                " asleep on " + std::to_string(heads_.size()) + " wait queues, " + std::to_string(entries_.size()) +
                " queued entries seen",
            unreadable_, "queue", unresolved_));
    }

private:
    bool is_text(uint64_t a) const {
        return std::any_of(text_.begin(), text_.end(), [&](const Range& r) { return r.contains(a); });
    }

    void queue(const Thread& t, uint64_t node, const std::function<bool(uint64_t)>& is_entry, uint64_t head_off,
               bool simple) {
        std::vector<uint64_t> entries;
        std::string problem;
        uint64_t head = ring_head(mem_, node, is_entry, entries, problem);
        if (!head) {
            unresolved_.push_back(task_label(t) + " (" + problem + ")");
            return;
        }
        uint64_t object = head - head_off;
        if (!seen_.insert({t.task, object}).second) return;
        ++queued_;
        heads_.insert(object);
        KernelRef r;
        r.kind = RefKind::wait_queue;
        r.object = object;
        r.subject = task_label(t);
        r.detail = simple ? "asleep on the simple wait queue (swait: completions use it)" : "asleep on the wait queue";
        r.tasks = {t.id};
        out_.refs.push_back(std::move(r));
        if (simple) return;
        for (uint64_t e : entries) {
            uint64_t entry = e - L_.entry;
            if (!entries_.insert(entry).second) continue;
            uint64_t func = mem_.read_u64(entry + L_.func).value_or(0);
            if (generic_.count(func)) continue;
            KernelRef w;
            w.kind = RefKind::wait_entry;
            w.func = func;
            w.object = entry;
            w.data = object;
            w.subject = "wait queue " + hex(object);
            w.detail = "an entry whose wake function is called when the queue is woken";
            out_.refs.push_back(std::move(w));
        }
    }

    const SurveyContext& ctx_;
    const LinuxKernel& k_;
    MemorySource& mem_;
    WaitLayout L_;
    Survey& out_;
    std::vector<Range> text_;
    std::unordered_set<uint64_t> generic_;
    std::set<std::pair<uint64_t, uint64_t>> seen_;  // (task, head)
    std::unordered_set<uint64_t> heads_, entries_;
    size_t sleeping_ = 0, queued_ = 0, tasks_on_queues_ = 0;
    std::vector<std::string> unreadable_, unresolved_;
};

}  // namespace

void survey_wait_queues(const SurveyContext& ctx, Survey& out) { Reader(ctx, out).run(); }

}  // namespace kq
