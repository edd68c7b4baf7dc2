// Provider "locks": mutexes, rw_semaphores and semaphores that tasks are
// blocked on, with their owner and all their waiters; and locks in modules'
// data that are held with nobody waiting.
//
// A task blocked in mutex_lock, down_read/down_write or down keeps its waiter
// (struct mutex_waiter, rwsem_waiter, semaphore_waiter) on its own stack,
// `task` naming it and `list` linked into the lock's wait_list. Each sleeping
// task's stack is scanned for such waiters as waitqueue.cpp does for wait
// queue entries; the lock's wait_list is the one node of that circular list
// that is not on the stack of the task its `task` slot names (every waiter is
// on its own task's stack; a lock never is on the stack of that task).
//
// The three waiter structs have the same shape, so which lock it is comes from
// the code that queued it: the waiter lives in the frame of the lock's slow
// path, and the first word below it on the stack that is a kernel text address
// is that function's return address from its call into the scheduler
// (__mutex_lock*, rwsem_down_*_slowpath, __down*). A list node whose first
// text word below is not in a lock function is not a lock waiter (a queued
// wait_queue_entry followed by a saved copy of `current` has the same shape)
// and is left out.
//
// Held locks without waiters cannot be found from the stacks. For modules
// whose .ko is known, every data object of the size of a struct mutex or
// struct rw_semaphore is checked: one whose owner is a known task (or, for an
// rw_semaphore, whose count holds readers) and whose wait_list is a valid
// list_head is reported as held.
//
// Each lock is one reference: the lock as object, its wait_list as data, the
// owner first in tasks and then the waiters in queue order.
#include <elf.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "kernel/linux/providers.h"
#include "kernel/linux/stack_wait.h"
#include "symbols/elf_image.h"

namespace kq {


namespace {

using namespace stack_wait;

// Flag bits of the lock words: #defines in kernel/locking/{mutex,rwsem}.c, not in DWARF.
constexpr uint64_t kMutexFlags = 0x07;          // MUTEX_FLAG_WAITERS | _HANDOFF | _PICKUP
constexpr uint64_t kRwsemWriterLocked = 1u << 0;
constexpr uint64_t kRwsemReaderShift = 8;       // readers counted from bit 8 ...
constexpr uint64_t kRwsemReadFail = 1ull << 63; // ... up to RWSEM_FLAG_READFAIL
constexpr uint64_t kRwsemReaderOwned = 1u << 0; // in owner
constexpr uint64_t kRwsemOwnerFlags = 0x07;

enum class Kind { mutex, rwsem, semaphore, unknown };

const char* kind_name(Kind k) {
    switch (k) {
        case Kind::mutex: return "mutex";
        case Kind::rwsem: return "rw_semaphore";
        case Kind::semaphore: return "semaphore";
        case Kind::unknown: return "lock";
    }
    return "?";
}

std::string hex(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%#llx", static_cast<unsigned long long>(v));
    return b;
}

struct LockLayout {
    uint64_t mw_list, mw_task, m_owner, m_wait_list, m_size;
    uint64_t rw_list, rw_task, r_count, r_owner, r_wait_list, r_size;
    std::optional<uint64_t> sw_list, sw_task, s_count, s_wait_list;  // semaphores: optional

    explicit LockLayout(const LinuxKernel& k) {
        auto& t = k.types();
        mw_list = k.off("mutex_waiter", "list");
        mw_task = k.off("mutex_waiter", "task");
        m_owner = k.off("mutex", "owner");
        m_wait_list = k.off("mutex", "wait_list");
        m_size = t.size_or_throw("mutex");
        rw_list = k.off("rwsem_waiter", "list");
        rw_task = k.off("rwsem_waiter", "task");
        r_count = k.off("rw_semaphore", "count");
        r_owner = k.off("rw_semaphore", "owner");
        r_wait_list = k.off("rw_semaphore", "wait_list");
        r_size = t.size_or_throw("rw_semaphore");
        sw_list = t.offset("semaphore_waiter", "list");
        sw_task = t.offset("semaphore_waiter", "task");
        s_count = t.offset("semaphore", "count");
        s_wait_list = t.offset("semaphore", "wait_list");
    }
};

// The lock function a return address lies in, by its symbol's name (without
// a GCC suffix such as .constprop.0).
Kind kind_of_function(std::string name) {
    name = name.substr(0, name.find('.'));
    auto starts = [&](const char* p) { return name.rfind(p, 0) == 0; };
    if (starts("__mutex_lock") || starts("mutex_lock") || starts("__ww_mutex_lock") || starts("ww_mutex_lock"))
        return Kind::mutex;
    if (starts("rwsem_down_") || starts("down_read") || starts("down_write") || starts("__down_read") ||
        starts("__down_write"))
        return Kind::rwsem;
    for (const char* f : {"__down", "__down_common", "__down_interruptible", "__down_killable", "__down_timeout"})
        if (name == f) return Kind::semaphore;
    return Kind::unknown;
}

class Reader {
public:
    Reader(const SurveyContext& ctx, Survey& out)
        : ctx_(ctx), k_(ctx.kernel), mem_(k_.mem()), L_(k_), out_(out), text_(kernel_text(k_)) {
        for (const auto& t : ctx.threads) by_task_.emplace(t.task, &t);
    }

    void run() {
        // The waiter shapes to look for: (task offset, list offset), once each.
        std::vector<std::pair<uint64_t, uint64_t>> shapes{{L_.mw_task, L_.mw_list}, {L_.rw_task, L_.rw_list}};
        if (L_.sw_task && L_.sw_list && L_.s_wait_list) shapes.push_back({*L_.sw_task, *L_.sw_list});
        std::sort(shapes.begin(), shapes.end());
        shapes.erase(std::unique(shapes.begin(), shapes.end()), shapes.end());

        for (const auto& t : ctx_.threads) {
            if (!is_sleeping(t)) continue;
            ++examined_;
            for (auto [task_off, list_off] : shapes) {
                auto nodes = stack_waiters(mem_, t, task_off, list_off);
                if (!nodes) {
                    unreadable_.push_back(task_label(t));
                    break;
                }
                for (uint64_t n : *nodes) waited_lock(t, n, task_off, list_off);
            }
        }
        held_module_locks();

        out_.coverage.push_back(stack_coverage(
            "locks",
            std::to_string(examined_) + " blocked tasks examined, " + std::to_string(with_waiters_) +
                " locks with waiters; held locks without waiters looked for in the data of " +
                std::to_string(modules_checked_) + " modules (" + std::to_string(held_) + " found)",
            unreadable_, "lock", unresolved_));
    }

private:
    const Thread* task(uint64_t addr) const {
        auto it = by_task_.find(addr);
        return it == by_task_.end() ? nullptr : it->second;
    }

    // The lock function whose frame holds the waiter at `waiter` on t's stack.
    Kind frame_kind(const Thread& t, uint64_t waiter) const {
        constexpr uint64_t kWindow = 512;
        uint64_t lo = std::max(t.stack_base, waiter > kWindow ? waiter - kWindow : 0);
        for (uint64_t a = waiter - 8; a >= lo && a < waiter; a -= 8) {
            auto v = mem_.read_u64(a);
            if (!v || !text_.contains(*v)) continue;
            const ElfSymbol* s = k_.vmlinux().symbol_at(*v - k_.slide());
            return s ? kind_of_function(s->name) : Kind::unknown;
        }
        return Kind::unknown;
    }

    void waited_lock(const Thread& t, uint64_t node, uint64_t task_off, uint64_t list_off) {
        // Not queued by a lock's slow path: some other list that happens to
        // have the task's address after a list_head (a wait queue entry
        // followed by a saved `current`, ...).
        Kind kind = frame_kind(t, node - list_off);
        auto shape = kind == Kind::mutex ? std::pair{L_.mw_task, L_.mw_list}
                   : kind == Kind::rwsem ? std::pair{L_.rw_task, L_.rw_list}
                   : kind == Kind::semaphore && L_.s_wait_list ? std::pair{*L_.sw_task, *L_.sw_list}
                   : std::pair<uint64_t, uint64_t>{~0ull, ~0ull};
        if (shape != std::pair<uint64_t, uint64_t>{task_off, list_off}) return;
        std::vector<uint64_t> waiters;
        std::string problem;
        uint64_t head = ring_head(mem_, node, on_own_stack(mem_, ctx_.threads, task_off, list_off), waiters, problem);
        if (!head) {
            unresolved_.push_back(task_label(t) + " (" + problem + ")");
            return;
        }
        if (!heads_.insert(head).second) return;
        uint64_t lock = kind == Kind::mutex ? head - L_.m_wait_list
                      : kind == Kind::rwsem ? head - L_.r_wait_list
                      : head - *L_.s_wait_list;
        std::vector<int64_t> ids;
        for (uint64_t w : waiters)
            if (const Thread* wt = task(mem_.read_u64(w - list_off + task_off).value_or(0))) ids.push_back(wt->id);
        ++with_waiters_;
        std::string n = std::to_string(waiters.size()) + (waiters.size() == 1 ? " waiter" : " waiters");
        report(kind, lock, head, n, ids);
    }

    // "held by task P (comm)" / "held for reading by N readers ..." / "not held",
    // and the owner's task id when known.
    std::string owner_of(Kind kind, uint64_t lock, int64_t* owner_id) const {
        auto named = [&](uint64_t a) {
            const Thread* o = task(a);
            if (o) *owner_id = o->id;
            return o ? task_label(*o) : "task_struct " + hex(a) + " (not a known task)";
        };
        if (kind == Kind::mutex) {
            auto w = mem_.read_u64(lock + L_.m_owner);
            if (!w) return "owner unreadable";
            return (*w & ~kMutexFlags) ? "held by " + named(*w & ~kMutexFlags) : "not held (being handed over)";
        }
        if (kind == Kind::rwsem) {
            auto c = mem_.read_u64(lock + L_.r_count);
            auto w = mem_.read_u64(lock + L_.r_owner);
            if (!c || !w) return "count or owner unreadable";
            if (*c & kRwsemWriterLocked) return "held for writing by " + named(*w & ~kRwsemOwnerFlags);
            uint64_t readers = (*c & ~kRwsemReadFail) >> kRwsemReaderShift;
            if (readers) {
                std::string s = "held for reading by " + std::to_string(readers) +
                                (readers == 1 ? " reader" : " readers");
                if ((*w & kRwsemReaderOwned) && (*w & ~kRwsemOwnerFlags)) {
                    const Thread* o = task(*w & ~kRwsemOwnerFlags);
                    s += " (reader-owned; the last reader to take it was " +
                         (o ? task_label(*o) : hex(*w & ~kRwsemOwnerFlags)) + ", it may have released it)";
                }
                return s;
            }
            return "not held";
        }
        if (kind == Kind::semaphore && L_.s_count) {
            auto c = mem_.read_as<uint32_t>(lock + *L_.s_count);
            return c ? "count " + std::to_string(*c) : "count unreadable";
        }
        return "";
    }

    void report(Kind kind, uint64_t lock, uint64_t wait_list, const std::string& waiters,
                const std::vector<int64_t>& waiter_ids) {
        int64_t owner = -1;
        std::string held = owner_of(kind, lock, &owner);
        KernelRef r;
        r.kind = RefKind::lock;
        r.object = lock;
        r.data = wait_list;
        r.subject = std::string(kind_name(kind)) + " " + hex(lock);
        r.detail = std::string(kind_name(kind)) + " " + held + ", " + waiters;
        if (owner >= 0) r.tasks.push_back(owner);
        r.tasks.insert(r.tasks.end(), waiter_ids.begin(), waiter_ids.end());
        out_.refs.push_back(std::move(r));
    }

    // A list_head that is empty or consistently linked.
    bool valid_list(uint64_t head) const {
        auto next = mem_.read_u64(head), prev = mem_.read_u64(head + 8);
        if (!next || !prev) return false;
        if (*next == head) return *prev == head;
        return mem_.read_u64(*next + 8) == head && mem_.read_u64(*prev) == head;
    }

    void held_module_locks() {
        for (const auto& m : ctx_.modules) {
            if (m.ko_path.empty()) continue;
            std::unique_ptr<ElfImage> ko;
            try {
                ko = ElfImage::open(m.ko_path);
            } catch (const Error&) {
                continue;
            }
            ++modules_checked_;
            std::unordered_map<unsigned, uint64_t> section_addr;
            for (const auto& s : ko->sections())
                for (const auto& ms : m.sections)
                    if (ms.name == s.name) section_addr[s.index] = ms.addr;
            for (const auto& sym : ko->symbols()) {
                if (sym.type != STT_OBJECT || (sym.size != L_.m_size && sym.size != L_.r_size)) continue;
                auto sec = section_addr.find(sym.shndx);
                if (sec == section_addr.end()) continue;
                uint64_t a = sec->second + sym.value;
                if (sym.size == L_.m_size) held_mutex(a);
                else held_rwsem(a);
            }
        }
    }

    void held_mutex(uint64_t a) {
        if (heads_.count(a + L_.m_wait_list)) return;
        auto w = mem_.read_u64(a + L_.m_owner);
        if (!w || !task(*w & ~kMutexFlags) || !valid_list(a + L_.m_wait_list)) return;
        heads_.insert(a + L_.m_wait_list);
        ++held_;
        report(Kind::mutex, a, a + L_.m_wait_list, "no waiters", {});
    }

    void held_rwsem(uint64_t a) {
        if (heads_.count(a + L_.r_wait_list)) return;
        auto c = mem_.read_u64(a + L_.r_count), w = mem_.read_u64(a + L_.r_owner);
        if (!c || !w || (*c & 0xf8) || !valid_list(a + L_.r_wait_list)) return;  // bits 3-7 are unused
        bool writer = (*c & kRwsemWriterLocked) && task(*w & ~kRwsemOwnerFlags);
        bool readers = !(*c & kRwsemWriterLocked) && ((*c & ~kRwsemReadFail) >> kRwsemReaderShift) &&
                       (*w & kRwsemReaderOwned);
        if (!writer && !readers) return;
        heads_.insert(a + L_.r_wait_list);
        ++held_;
        report(Kind::rwsem, a, a + L_.r_wait_list, "no waiters", {});
    }

    const SurveyContext& ctx_;
    const LinuxKernel& k_;
    MemorySource& mem_;
    LockLayout L_;
    Survey& out_;
    Range text_;
    std::unordered_map<uint64_t, const Thread*> by_task_;
    std::unordered_set<uint64_t> heads_;
    size_t examined_ = 0, with_waiters_ = 0, modules_checked_ = 0, held_ = 0;
    std::vector<std::string> unreadable_, unresolved_;
};

}  // namespace

void survey_locks(const SurveyContext& ctx, Survey& out) { Reader(ctx, out).run(); }

}  // namespace kq
