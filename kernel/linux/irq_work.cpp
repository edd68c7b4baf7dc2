// Provider "irq_work": every queued irq_work on every CPU, and the other
// requests queued for a CPU to run a function in interrupt context.
//
// Each CPU has two per-CPU lock-free lists (struct llist_head, `first`, then
// llist_node `next`, NULL-terminated) of struct irq_work linked by
// node.llist: raised_list (run from the irq_work interrupt) and lazy_list
// (run at the next tick, or by the irq_work thread on PREEMPT_RT). An
// irq_work queued for another CPU (irq_work_queue_on) goes instead to that
// CPU's call_single_queue, the list of the SMP function call IPI, as a
// __call_single_node whose flags say its type (CSD_TYPE_* from DWARF): an
// irq_work, a call_single_data (smp_call_function_single[_async]: `func` will
// be called there), or a task wake-up (not a function: counted, not reported).
//
// Reported: one irq_work reference per queued irq_work or call_single_data,
// its function as func and the structure as object. Not seen: an irq_work or
// function call the CPU has already taken off its list to run (that one is on
// the CPU's stack).
#include <optional>

#include "kernel/linux/providers.h"
#include "kernel/list_walk.h"

namespace kq {
namespace {

constexpr size_t kMaxQueued = 1u << 20;  // over all lists: beyond this the input is not a kernel's

struct IrqWorkLayout {
    uint64_t first;               // in llist_head
    uint64_t work_node, work_func, work_flags;  // in irq_work
    std::optional<uint64_t> csd_node, csd_func;  // in __call_single_data
    uint64_t node_flags;          // u_flags in __call_single_node, relative to its llist
    std::optional<int64_t> type_mask, type_irq_work, type_async, type_sync, lazy, hard;

    explicit IrqWorkLayout(const LinuxKernel& k) {
        auto& t = k.types();
        first = k.off("llist_head", "first");
        work_node = k.off("irq_work", "node.llist");
        work_func = k.off("irq_work", "func");
        work_flags = k.off("irq_work", "node.u_flags");
        node_flags = k.off("__call_single_node", "u_flags") - k.off("__call_single_node", "llist");
        csd_node = t.offset("__call_single_data", "node.llist");
        csd_func = t.offset("__call_single_data", "func");
        type_mask = t.enumerator("CSD_FLAG_TYPE_MASK");
        type_irq_work = t.enumerator("CSD_TYPE_IRQ_WORK");
        type_async = t.enumerator("CSD_TYPE_ASYNC");
        type_sync = t.enumerator("CSD_TYPE_SYNC");
        lazy = t.enumerator("IRQ_WORK_LAZY");
        hard = t.enumerator("IRQ_WORK_HARD_IRQ");
    }
    // call_single_queue is read only when the kernel says what its entries are.
    bool call_single_queue_known() const {
        return csd_node && csd_func && type_mask && type_irq_work && type_async && type_sync;
    }
};

class IrqWorkReader {
public:
    IrqWorkReader(const SurveyContext& ctx, Survey& out) : k_(ctx.kernel), mem_(k_.mem()), L_(k_), out_(out) {}

    void run() {
        const bool csq = L_.call_single_queue_known() && k_.find_symbol("call_single_queue");
        int ncpu = k_.nr_cpus();
        int whole = 0;
        for (int cpu = 0; cpu < ncpu; ++cpu) {
            std::string on = "CPU " + std::to_string(cpu) + " ";
            bool ok = true;
            for (const char* list : {"raised_list", "lazy_list"})
                ok &= walk(on + list, k_.per_cpu(list, cpu), [&](uint64_t node, const std::string& subject) {
                    irq_work(node - L_.work_node, subject, "");
                });
            if (csq) ok &= walk(on + "call_single_queue", k_.per_cpu("call_single_queue", cpu),
                                [&](uint64_t node, const std::string& subject) { call_single(node, subject); });
            whole += ok;
        }
        std::string covered = std::to_string(whole) + "/" + std::to_string(ncpu) + " CPUs' raised_list, lazy_list" +
                              (csq ? " and call_single_queue, " : ", ") + std::to_string(works_) +
                              " queued irq_work, " + std::to_string(calls_) + " queued function calls";
        if (wakeups_) covered += ", " + std::to_string(wakeups_) + " queued task wake-ups";
        if (!csq) covered += "; call_single_queue not read (no CSD_TYPE_* in DWARF): irq_work queued for another CPU not seen";
        out_.coverage.push_back({"irq_work", covered, problems_.empty(), problems_.summary()});
    }

private:
    // One llist: visit(node, subject) for each llist_node on it.
    template <class Visit>
    bool walk(const std::string& subject, uint64_t head, Visit visit) {
        auto first = mem_.read_u64(head + L_.first);
        if (!first) {
            problems_.add(subject + ": unreadable at " + addr_text(head));
            return false;
        }
        size_t seen = works_ + calls_ + wakeups_;
        auto w = walk_hlist(mem_, *first, 0, [&](uint64_t node) {
            visit(node, subject);
            return true;
        }, kMaxQueued > seen ? kMaxQueued - seen : 0);
        return problems_.check(subject, w);
    }

    void irq_work(uint64_t work, const std::string& subject, const std::string& how) {
        ++works_;
        KernelRef r{RefKind::irq_work, 0, work, 0, subject, "", {}};
        auto fn = mem_.read_u64(work + L_.work_func);
        auto flags = mem_.read_as<uint32_t>(work + L_.work_flags);
        if (!fn || !flags) {
            problems_.add(subject + ": irq_work at " + addr_text(work) + " unreadable");
            r.detail = "unreadable irq_work";
        } else {
            r.func = *fn;
            r.detail = "queued irq_work" + how;
            if (L_.lazy && (*flags & *L_.lazy)) r.detail += " (lazy: runs at the next tick)";
            if (L_.hard && (*flags & *L_.hard)) r.detail += " (hard interrupt context)";
        }
        out_.refs.push_back(std::move(r));
    }

    void call_single(uint64_t node, const std::string& subject) {
        auto flags = mem_.read_as<uint32_t>(node + L_.node_flags);
        if (!flags) {
            problems_.add(subject + ": __call_single_node at " + addr_text(node) + " unreadable");
            return;
        }
        int64_t type = *flags & *L_.type_mask;
        if (type == *L_.type_irq_work) return irq_work(node - L_.work_node, subject, " for another CPU");
        if (type != *L_.type_async && type != *L_.type_sync) {
            ++wakeups_;  // CSD_TYPE_TTWU: a task_struct's wake_entry, no function
            return;
        }
        ++calls_;
        KernelRef r{RefKind::irq_work, 0, node - *L_.csd_node, 0, subject, "", {}};
        if (auto fn = mem_.read_u64(r.object + *L_.csd_func)) {
            r.func = *fn;
            r.detail = std::string("queued function call (call_single_data, ") +
                       (type == *L_.type_sync ? "the caller waits)" : "asynchronous)");
        } else {
            problems_.add(subject + ": call_single_data at " + addr_text(r.object) + " unreadable");
            r.detail = "unreadable call_single_data";
        }
        out_.refs.push_back(std::move(r));
    }

    const LinuxKernel& k_;
    MemorySource& mem_;
    IrqWorkLayout L_;
    Survey& out_;
    size_t works_ = 0, calls_ = 0, wakeups_ = 0;
    WalkProblems problems_;
};

}  // namespace

void survey_irq_work(const SurveyContext& ctx, Survey& out) { IrqWorkReader(ctx, out).run(); }

}  // namespace kq
