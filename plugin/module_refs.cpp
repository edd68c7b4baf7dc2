#include "plugin/module_refs.h"

#include <map>

#include "plugin/session.h"
#include "plugin/stack.h"

namespace kq {
namespace {

struct Owner {
    std::string kind;  // "module", "stack"
    std::string name;
    uint64_t vaddr;    // virtual address of the page
};

}  // namespace

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

ModuleRefs find_module_refs(Session& s, lldb::SBTarget& target, const Module& m, size_t max_hits,
                            const std::function<void(const std::string&)>& say) {
    auto& sys = s.system();
    Dump& dump = sys.dump();
    const uint64_t page = dump.page_size();
    ModuleRefs out;

    RefScanRequest req;
    req.read_phys = [&](uint64_t pa, void* b, size_t n) { return dump.read_phys(pa, b, n); };
    req.memory = dump.memory_ranges();
    if (req.memory.empty()) throw Error("this dump (" + dump.format() + ") does not say which physical memory it holds");
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
        if (t.stack_base && t.stack_size <= (1u << 20))
            pages(t.stack_base, t.stack_size, [&](uint64_t pfn, uint64_t v) {
                owners[pfn] = {"stack", task_label(t), v};
            });

    // The kernel image is physically contiguous from _text to _end.
    const uint64_t text = sys.kernel().symbol("_text"), end = sys.kernel().symbol("_end");
    const auto text_pa = dump.to_phys(text);
    const uint64_t direct_map = sys.kernel().direct_map_base();

    if (say)
        req.progress = [&](uint64_t done, uint64_t total) {
            say("scanning memory for references into " + m.name + ": " +
                std::to_string(done * 100 / std::max<uint64_t>(total, 1)) + "%");
        };
    out.stats = scan_refs(req);
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
        } else {
            r.vaddr = direct_map ? direct_map + h.phys : 0;
            r.container = "unknown";  // slab objects and page owners are not named yet
        }
        r.points_to = symbol_at(target, h.value, true);
        out.refs.push_back(std::move(r));
    }
    out.stats.hits.clear();
    return out;
}

}  // namespace kq
