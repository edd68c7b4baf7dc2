// Provider "irq handlers": every interrupt descriptor and the handlers
// registered on it.
//
// With CONFIG_SPARSE_IRQ (distribution kernels up to 6.4) the descriptors are
// in irq_desc_tree, a radix tree, which since 4.20 is an XArray (struct
// xarray: xa_head). An entry is either a pointer (a struct irq_desc*) or an
// internal entry (low bits 10): above 4096 a node (struct xa_node: shift,
// slots[XA_CHUNK_SIZE], the size from DWARF), below it a sibling, retry or
// zero entry, which hold no descriptor. A head that is no node is the only
// entry, index 0. The walk is iterative, bounded and cycle-safe, and checks
// that each node's shift is its parent's minus the chunk's bits. Without
// sparse IRQs the descriptors are the array irq_desc[NR_IRQS].
//
// For each descriptor (its number from irq_data.irq): the flow handler
// (handle_irq) with the irq_chip as data, one reference with the descriptor
// as object; then the chain of struct irqaction from `action` by `next`
// (NULL-terminated, bounded, cycle-safe) and each action's `secondary`: one
// irq_handler reference per action (handler as func, the irqaction as object,
// dev_id as data, "IRQ n (name)" as subject), another for its thread_fn if
// threaded (the irq thread as task); and the affinity notifier's notify and
// release if one is set.
//
// Not read: interrupt handling outside irq_desc (the CPU vectors' system
// handlers, which are vmlinux code, and NMI handlers, nmi_desc).
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kernel/linux/providers.h"
#include "kernel/list_walk.h"

namespace kq {
namespace {

constexpr size_t kMaxDescs = 1u << 20;    // descriptors: beyond this the input is not a kernel's
constexpr size_t kMaxNodes = 1u << 16;    // xa_nodes of the tree
constexpr size_t kMaxActions = 1u << 10;  // actions sharing one IRQ

struct IrqLayout {
    uint64_t xa_head, node_shift, node_slots, chunk, chunk_bits;
    uint64_t desc_size, irq, action, handle_irq, chip, chip_name;
    std::optional<uint64_t> affinity_notify, notify, release;
    uint64_t handler, thread_fn, next, name, dev_id, thread, secondary;  // in irqaction

    explicit IrqLayout(const LinuxKernel& k) {
        auto& t = k.types();
        xa_head = k.off("xarray", "xa_head");
        node_shift = k.off("xa_node", "shift");
        node_slots = k.off("xa_node", "slots");
        chunk = t.member_size("xa_node", "slots").value_or(0) / 8;
        chunk_bits = 0;
        while ((uint64_t{1} << chunk_bits) < chunk) ++chunk_bits;
        if (!chunk || (uint64_t{1} << chunk_bits) != chunk)
            throw Error("xa_node.slots: no power-of-two array size in DWARF of " + t.file());
        desc_size = t.size_or_throw("irq_desc");
        irq = k.off("irq_desc", "irq_data.irq");
        action = k.off("irq_desc", "action");
        handle_irq = k.off("irq_desc", "handle_irq");
        chip = k.off("irq_desc", "irq_data.chip");
        chip_name = k.off("irq_chip", "name");
        affinity_notify = t.offset("irq_desc", "affinity_notify");
        notify = t.offset("irq_affinity_notify", "notify");
        release = t.offset("irq_affinity_notify", "release");
        handler = k.off("irqaction", "handler");
        thread_fn = k.off("irqaction", "thread_fn");
        next = k.off("irqaction", "next");
        name = k.off("irqaction", "name");
        dev_id = k.off("irqaction", "dev_id");
        thread = k.off("irqaction", "thread");
        secondary = k.off("irqaction", "secondary");
    }
};

bool xa_internal(uint64_t e) { return (e & 3) == 2; }
bool xa_node(uint64_t e) { return xa_internal(e) && e > 4096; }

class IrqReader {
public:
    IrqReader(const SurveyContext& ctx, Survey& out) : k_(ctx.kernel), mem_(k_.mem()), L_(k_), out_(out) {
        for (const auto& t : ctx.threads) tasks_[t.task] = &t;
    }

    void run() {
        std::string source;
        if (auto tree = k_.find_symbol("irq_desc_tree")) {
            source = "irq_desc_tree";
            walk_tree(*tree + L_.xa_head);
        } else if (const ElfSymbol* a = k_.vmlinux().symbol("irq_desc"); a && a->size) {
            source = "irq_desc[]";
            uint64_t base = k_.symbol("irq_desc");
            for (uint64_t i = 0; i < a->size / L_.desc_size; ++i) desc(i, base + i * L_.desc_size);
        } else {
            throw Error("neither irq_desc_tree nor irq_desc[] in " + k_.vmlinux().path() +
                        ": this kernel keeps its interrupt descriptors elsewhere");
        }
        std::string covered = std::to_string(descs_) + " IRQ descriptors (" + source;
        if (auto n = k_.find_symbol("nr_irqs"))
            if (auto v = mem_.read_as<uint32_t>(*n)) covered += ", nr_irqs " + std::to_string(*v);
        covered += "), " + std::to_string(actions_) + " handlers (" + std::to_string(threaded_) + " threaded)";
        if (notifiers_) covered += ", " + std::to_string(notifiers_) + " affinity notifiers";
        covered += "; not read: NMI handlers";
        out_.coverage.push_back({"irq handlers", covered, problems_.empty(), problems_.summary()});
    }

private:
    // The XArray whose head is the word at `head`: desc(index, entry) for each entry.
    void walk_tree(uint64_t head) {
        auto root = mem_.read_u64(head);
        if (!root) return problems_.add("irq_desc_tree: unreadable at " + addr_text(head));
        if (!*root) return;
        if (!xa_node(*root)) {
            if (!xa_internal(*root)) desc(0, *root);
            return;
        }
        struct Pending {
            uint64_t node;
            int64_t shift;  // what the node's shift must be (-1: the root, any)
            uint64_t base;  // the first index it covers
        };
        std::vector<Pending> todo{{*root - 2, -1, 0}};
        std::unordered_set<uint64_t> seen;
        std::vector<uint64_t> slots(L_.chunk);
        while (!todo.empty()) {
            Pending p = todo.back();
            todo.pop_back();
            std::string where = "irq_desc_tree node " + addr_text(p.node);
            if (!seen.insert(p.node).second) return problems_.add(where + " reached twice (a cycle)");
            if (seen.size() > kMaxNodes) return problems_.add("irq_desc_tree larger than " + std::to_string(kMaxNodes) + " nodes");
            auto shift = mem_.read_as<uint8_t>(p.node + L_.node_shift);
            if (!shift || !mem_.read_exact(p.node + L_.node_slots, slots.data(), slots.size() * 8)) {
                problems_.add(where + ": unreadable");
                continue;
            }
            if ((p.shift >= 0 && *shift != p.shift) || *shift >= 64 || *shift % L_.chunk_bits) {
                problems_.add(where + ": shift " + std::to_string(*shift) + " where " +
                              (p.shift >= 0 ? std::to_string(p.shift) : "a multiple of the chunk bits") +
                              " was expected");
                continue;
            }
            for (uint64_t i = 0; i < L_.chunk; ++i) {
                uint64_t e = slots[i], index = p.base + (i << *shift);
                if (!e) continue;
                if (!xa_internal(e)) {
                    if (descs_ >= kMaxDescs) return problems_.add("more than " + std::to_string(kMaxDescs) + " IRQ descriptors");
                    desc(index, e);
                } else if (xa_node(e)) {
                    if (*shift == 0) problems_.add(where + ": a node below its last level");
                    else todo.push_back({e - 2, int64_t(*shift - L_.chunk_bits), index});
                }
            }
        }
    }

    void desc(uint64_t index, uint64_t d) {
        ++descs_;
        auto irq = mem_.read_as<uint32_t>(d + L_.irq);
        auto first = mem_.read_u64(d + L_.action);
        auto flow = mem_.read_u64(d + L_.handle_irq);
        auto chip = mem_.read_u64(d + L_.chip);
        std::string subject = "IRQ " + std::to_string(index);
        if (!irq || !first || !flow || !chip) return problems_.add(subject + ": irq_desc at " + addr_text(d) + " unreadable");
        if (*irq != index) problems_.add(subject + ": irq_desc at " + addr_text(d) + " says IRQ " + std::to_string(*irq));
        if (*flow || *chip) {
            KernelRef r{RefKind::irq_handler, *flow, d, *chip, subject, "flow handler", {}};
            if (*chip)
                if (auto n = mem_.read_u64(*chip + L_.chip_name); n && *n) r.detail += "; chip " + mem_.read_cstr(*n, 64);
            out_.refs.push_back(std::move(r));
        }
        if (L_.affinity_notify && L_.notify && L_.release)
            if (auto n = mem_.read_u64(d + *L_.affinity_notify); n && *n) {
                ++notifiers_;
                for (uint64_t fn : {*L_.notify, *L_.release})
                    out_.refs.push_back({RefKind::irq_handler, mem_.read_u64(*n + fn).value_or(0), *n, 0, subject,
                                         fn == *L_.notify ? "affinity notifier" : "affinity notifier's release", {}});
            }
        // The chain by `next`: each pointer is the next irqaction itself.
        std::unordered_set<uint64_t> seen;
        std::optional<uint64_t> a = first;
        for (; a && *a; a = mem_.read_u64(*a + L_.next)) {
            if (!seen.insert(*a).second || seen.size() > kMaxActions)
                return problems_.add(subject + ": irqaction chain loops or is too long at " + addr_text(*a));
            if (!action(index, *a, "")) return;
            auto second = mem_.read_u64(*a + L_.secondary);
            if (second && *second && !action(index, *second, "secondary (forced threading) ")) return;
        }
        if (!a) problems_.add(subject + ": unreadable irqaction pointer");
    }

    // One irqaction; false (with a problem) if unreadable.
    bool action(uint64_t index, uint64_t a, const std::string& role) {
        auto handler = mem_.read_u64(a + L_.handler);
        auto thread_fn = mem_.read_u64(a + L_.thread_fn);
        auto dev_id = mem_.read_u64(a + L_.dev_id);
        auto thread = mem_.read_u64(a + L_.thread);
        auto name = mem_.read_u64(a + L_.name);
        std::string subject = "IRQ " + std::to_string(index);
        if (!handler || !thread_fn || !dev_id || !thread || !name) {
            problems_.add(subject + ": irqaction at " + addr_text(a) + " unreadable");
            return false;
        }
        ++actions_;
        if (*name) subject += " (" + mem_.read_cstr(*name, 64) + ")";
        out_.refs.push_back({RefKind::irq_handler, *handler, a, *dev_id, subject, role + "handler", {}});
        if (*thread_fn) {
            ++threaded_;
            KernelRef r{RefKind::irq_handler, *thread_fn, a, *dev_id, subject, role + "threaded handler", {}};
            if (auto t = tasks_.find(*thread); t != tasks_.end()) {
                r.detail += ", run by task " + std::to_string(t->second->id) + " (" + t->second->name + ")";
                r.tasks = {t->second->id};
            }
            out_.refs.push_back(std::move(r));
        }
        return true;
    }

    const LinuxKernel& k_;
    MemorySource& mem_;
    IrqLayout L_;
    Survey& out_;
    std::unordered_map<uint64_t, const Thread*> tasks_;
    size_t descs_ = 0, actions_ = 0, threaded_ = 0, notifiers_ = 0;
    WalkProblems problems_;
};

}  // namespace

void survey_irqs(const SurveyContext& ctx, Survey& out) { IrqReader(ctx, out).run(); }

}  // namespace kq
