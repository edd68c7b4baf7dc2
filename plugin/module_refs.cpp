#include "plugin/module_refs.h"

#include <algorithm>
#include <map>
#include <memory>

#include "kernel/linux/module_bookkeeping.h"
#include "kernel/linux/providers.h"
#include "kernel/linux/slab.h"
#include "plugin/session.h"
#include "plugin/stack.h"

namespace kq {
namespace {

struct Owner {
    std::string kind;  // "module", "stack"
    std::string name;
    uint64_t vaddr;    // virtual address of the page
    uint64_t sp = 0;   // stack: the task's stack pointer, when on this stack (words below it are dead)
};

// Physical ranges of the module's bookkeeping objects: the scan knows a
// word by its physical address.
struct PhysPiece {
    uint64_t start, end, vaddr;  // [start, end) holds the object's bytes from vaddr on
    const BookkeepingObject* object;
};

std::vector<PhysPiece> physical(PhysicalMemory& dump, const ModuleBookkeeping& bk) {
    const uint64_t page = dump.page_size();
    std::vector<PhysPiece> out;
    for (const auto& o : bk.objects)
        for (uint64_t v = o.start; v < o.start + o.size;) {
            const uint64_t next = std::min((v & ~(page - 1)) + page, o.start + o.size);
            if (auto pa = dump.to_phys(v)) out.push_back({*pa, *pa + (next - v), v, &o});
            v = next;
        }
    std::sort(out.begin(), out.end(), [](const PhysPiece& a, const PhysPiece& b) { return a.start < b.start; });
    return out;
}

// The piece holding physical address pa (objects do not overlap), or null.
const PhysPiece* holding(const std::vector<PhysPiece>& pieces, uint64_t pa) {
    auto it = std::upper_bound(pieces.begin(), pieces.end(), pa, [](uint64_t x, const PhysPiece& p) { return x < p.start; });
    if (it == pieces.begin() || pa >= std::prev(it)->end) return nullptr;
    return &*std::prev(it);
}

// A direct-mapped word by the page or slab object holding it.
void attribute_direct(Slabs& slabs, ModuleRef& r) {
    PageOwner o = slabs.owner(r.vaddr);
    if (o.kind == PageOwner::Kind::slab) {
        r.container = "slab";
        if (!o.what.empty()) {
            r.where = o.slab.cache + ": " + o.what;
            r.weight = RefWeight::advisory;
            return;
        }
        const SlabObject& so = o.slab;
        r.where = so.cache + " object " + hex_addr(so.object) + " +" + hex_addr(so.offset);
        if (so.state == SlabObject::State::free) {
            r.where += " (free)";
            r.weight = RefWeight::advisory;
        } else if (so.state == SlabObject::State::unknown) {
            r.where += " (free or allocated: " + so.state_note + ")";
        }
        return;
    }
    r.container = o.kind == PageOwner::Kind::page ? "page" : "unknown";
    r.where = o.what;
    if (!o.kernel_data) r.weight = RefWeight::advisory;
}

// Each CPU's copy of the kernel's per-CPU data (.data..percpu, linked at 0):
// where a word is named by its per-CPU symbol.
struct PerCpu {
    const ElfImage& vmlinux;
    unsigned shndx = 0;
    uint64_t size = 0;
    std::vector<uint64_t> offsets;  // __per_cpu_offset[cpu]

    explicit PerCpu(LinuxSystem& sys) : vmlinux(sys.vmlinux()) {
        auto& k = sys.kernel();
        const ElfSymbol* end = vmlinux.symbol("__per_cpu_end");
        for (const auto& sec : vmlinux.sections())
            if (sec.name == ".data..percpu") shndx = sec.index, size = sec.size;
        if (!end || !shndx) return;
        size = std::min(size, end->value);
        if (auto pco = k.find_symbol("__per_cpu_offset"))
            for (int c = 0; c < k.nr_cpus(); ++c) offsets.push_back(k.read_u64(*pco + 8ull * c).value_or(0));
    }

    // "runqueues+0x40 (CPU 1)", or "" outside every CPU's copy.
    std::string name(uint64_t vaddr) const {
        for (size_t c = 0; c < offsets.size(); ++c) {
            if (!offsets[c] || vaddr - offsets[c] >= size) continue;
            const uint64_t off = vaddr - offsets[c];
            const ElfSymbol* s = vmlinux.symbol_in_section(shndx, off);
            std::string n = s ? s->name + (off > s->value ? "+" + hex_addr(off - s->value) : "") : "per-CPU data+" + hex_addr(off);
            return n + " (CPU " + std::to_string(c) + ")";
        }
        return {};
    }
};

}  // namespace

std::string per_cpu_name(LinuxSystem& sys, uint64_t vaddr) { return PerCpu(sys).name(vaddr); }

const char* to_string(RefWeight w) {
    switch (w) {
        case RefWeight::evidence: return "evidence";
        case RefWeight::advisory: return "advisory";
        case RefWeight::bookkeeping: break;
    }
    return "bookkeeping";
}

size_t ModuleRefs::count(RefWeight w) const {
    return std::count_if(refs.begin(), refs.end(), [&](const ModuleRef& r) { return r.weight == w; });
}

std::string symbol_at(lldb::SBTarget& target, uint64_t addr, bool with_module) {
    lldb::SBAddress a = target.ResolveLoadAddress(addr);
    lldb::SBSymbol sym = a.GetSymbol();
    if (!sym.IsValid() || !sym.GetName()) return {};
    const uint64_t start = sym.GetStartAddress().GetLoadAddress(target);
    std::string s = sym.GetName();
    if (start != LLDB_INVALID_ADDRESS && start < addr) s += "+" + hex_addr(addr - start);
    lldb::SBModule mod = a.GetModule();
    if (with_module && mod.IsValid() && mod.GetFileSpec().GetFilename()) {
        std::string f = mod.GetFileSpec().GetFilename();
        if (f.size() > 3 && f.ends_with(".ko")) s = f.substr(0, f.size() - 3) + "`" + s;
    }
    return s;
}

// The notifier blocks on the kernel's global chains, with their chain: a
// word inside one is that chain's link to the next block, named after the
// chain's head. Empty if the chains cannot be read.
static std::vector<std::pair<Range, std::string>> chain_blocks(LinuxSystem& sys) {
    std::vector<std::pair<Range, std::string>> out;
    const uint64_t size = sys.kernel().types().size("notifier_block").value_or(0);
    if (!size) return out;
    Survey s;
    try {
        survey_notifiers({sys.kernel(), sys.threads(), sys.modules()}, s);
    } catch (const Error&) {
        return out;
    }
    for (const auto& r : s.refs)
        if (r.object) out.push_back({Range{r.object, size, "notifier_block"}, r.subject});
    return out;
}

ModuleRefs find_module_refs(Session& s, lldb::SBTarget& target, const Module& m, size_t max_hits,
                            const std::function<void(const std::string&)>& say) {
    auto& sys = s.kernel_system();
    PhysicalMemory& dump = sys.physical();  // a dump's, or a live kernel's
    const uint64_t page = dump.page_size();
    ModuleRefs out;

    RefScanRequest req;
    req.read_phys = [&](uint64_t pa, void* b, size_t n) { return dump.read_phys_bulk(pa, b, n); };
    req.memory = dump.memory_ranges();
    if (req.memory.empty()) throw Error("this memory (" + dump.format() + ") does not say which physical memory it holds");
    for (const auto& r : m.ranges) req.targets.emplace_back(r.start, r.start + r.size);
    req.page_size = page;
    req.max_hits = max_hits;

    // Physical pages of what has virtual addresses only: the module itself
    // (skipped), other modules and task stacks (named).
    std::map<uint64_t, Owner> owners;  // physical page -> owner
    auto pages = [&](uint64_t start, uint64_t size, auto&& fn) {
        for (uint64_t v = start & ~(page - 1); v < start + size; v += page) {
            if (auto pa = dump.to_phys(v)) fn(*pa / page, v);
            else ++out.untranslated_pages;
        }
    };
    for (const auto& r : m.ranges) pages(r.start, r.size, [&](uint64_t pfn, uint64_t) { req.skip_pages.push_back(pfn); });
    for (const auto& o : sys.modules())
        if (o.name != m.name)
            for (const auto& r : o.ranges)
                pages(r.start, r.size, [&](uint64_t pfn, uint64_t v) { owners[pfn] = {"module", o.name, v}; });
    for (const auto& t : sys.threads())
        if (t.stack_base && t.stack_size <= (1u << 20)) {
            const uint64_t sp = t.regs.has(Reg::rsp) && t.regs.get(Reg::rsp) - t.stack_base < t.stack_size ? t.regs.get(Reg::rsp) : 0;
            pages(t.stack_base, t.stack_size, [&](uint64_t pfn, uint64_t v) {
                owners[pfn] = {"stack", task_label(t), v, sp};
            });
        }

    // The kernel image is physically contiguous.
    const Range image = sys.image_range();
    const uint64_t text = image.start, end = image.start + image.size;
    const auto text_pa = dump.to_phys(text);
    const uint64_t direct_map = sys.direct_map_base();

    if (say)
        req.progress = [&](uint64_t done, uint64_t total) {
            say("scanning memory for references into " + m.name + ": " +
                std::to_string(done * 100 / std::max<uint64_t>(total, 1)) + "%");
        };
    out.stats = scan_refs(req);

    // Linux's allocators and records name more of the hits; elsewhere the
    // scan is a plain one: what holds a direct-mapped word stays unknown.
    ModuleBookkeeping bk;
    std::unique_ptr<Slabs> slabs;
    std::unique_ptr<PerCpu> percpu;
    std::vector<std::pair<Range, std::string>> chains;
    if (sys.os() == KernelOs::Linux) {
        LinuxSystem& lin = s.linux_system();
        if (say) say("identifying the kernel's records of " + m.name);
        bk = module_bookkeeping(lin.kernel(), m, lin.modules());
        slabs = std::make_unique<Slabs>(lin.kernel());
        percpu = std::make_unique<PerCpu>(lin);
        chains = chain_blocks(lin);
    }
    out.bookkeeping_problems = bk.problems;
    const auto bk_phys = physical(dump, bk);
    for (const auto& h : out.stats.hits) {
        ModuleRef r;
        r.phys = h.phys;
        r.value = h.value;
        if (text_pa && h.phys >= *text_pa && h.phys < *text_pa + (end - text)) {
            r.vaddr = text + (h.phys - *text_pa);
            r.container = "kernel";
            r.where = symbol_at(target, r.vaddr, true);
        } else if (auto it = owners.find(h.phys / page); it != owners.end()) {
            r.vaddr = it->second.vaddr + h.phys % page;
            r.container = it->second.kind;
            r.where = it->second.kind == "module" ? symbol_at(target, r.vaddr, true) : it->second.name;
            if (r.where.empty()) r.where = it->second.name;
            if (it->second.sp && r.vaddr < it->second.sp) {
                r.where += ", below its stack pointer (dead)";
                r.weight = RefWeight::advisory;
            }
        } else if (direct_map && slabs) {
            r.vaddr = direct_map + h.phys;
            if (std::string pc = percpu->name(r.vaddr); !pc.empty()) {
                r.container = "percpu";
                r.where = pc;
            } else {
                attribute_direct(*slabs, r);
            }
        } else {
            r.container = "unknown";
            r.weight = RefWeight::advisory;
        }
        r.points_to = symbol_at(target, h.value, true);
        for (const auto& [block, chain] : chains)
            if (r.vaddr && block.contains(r.vaddr)) r.where += " (a link of the notifier chain " + chain + ")";
        if (const PhysPiece* p = holding(bk_phys, h.phys)) {
            const uint64_t off = p->vaddr + (h.phys - p->start) - p->object->start;
            r.where = p->object->what + (p->object->size > 8 ? " +" + hex_addr(off) : "") +
                      (r.where.empty() ? "" : ", in " + r.where);
            r.container = "bookkeeping";
            r.weight = RefWeight::bookkeeping;
        } else if (bk.module_struct.size && bk.module_struct.contains(h.value)) {
            r.where = "points into " + bk.module_struct.what + (r.where.empty() ? "" : ", from " + r.where);
            r.container = "bookkeeping";
            r.weight = RefWeight::bookkeeping;
        }
        out.refs.push_back(std::move(r));
    }
    out.stats.hits.clear();
    return out;
}

}  // namespace kq
