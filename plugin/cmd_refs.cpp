// kmod refs M: every word in the dumped memory that points into module M,
// attributed to what holds it (kernel symbol, another module, a task's
// stack, or the direct map where slab and page owners are not yet named).
#include <map>

#include "inuse/ref_scan.h"
#include "plugin/commands.h"
#include "plugin/session.h"
#include "plugin/stack.h"

namespace kq {
namespace {

struct Owner {
    std::string kind;  // "module", "stack"
    std::string name;
    uint64_t vaddr;    // virtual address of the page
};

std::string symbol_at(lldb::SBTarget& target, uint64_t addr) {
    lldb::SBAddress a = target.ResolveLoadAddress(addr);
    lldb::SBSymbol sym = a.GetSymbol();
    if (!sym.IsValid() || !sym.GetName()) return {};
    const uint64_t start = sym.GetStartAddress().GetLoadAddress(target);
    std::string s = sym.GetName();
    if (start != LLDB_INVALID_ADDRESS && start < addr) s += "+" + hex_addr(addr - start);
    lldb::SBModule mod = a.GetModule();
    if (mod.IsValid() && mod.GetFileSpec().GetFilename()) {
        std::string f = mod.GetFileSpec().GetFilename();
        if (f.size() > 3 && f.ends_with(".ko")) s = f.substr(0, f.size() - 3) + "`" + s;
    }
    return s;
}

void refs(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    if (args.positional.size() != 1) throw Error("usage: kmod refs MODULE [--json] [--max N]");
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    auto& sys = s.system();
    Dump& dump = sys.dump();
    const Module& m = s.module(args.positional[0]);
    const uint64_t page = dump.page_size();

    RefScanRequest req;
    req.read_phys = [&](uint64_t pa, void* b, size_t n) { return dump.read_phys(pa, b, n); };
    req.memory = dump.memory_ranges();
    if (req.memory.empty()) throw Error("this dump (" + dump.format() + ") does not say which physical memory it holds");
    for (const auto& r : m.ranges) req.targets.emplace_back(r.start, r.start + r.size);
    req.page_size = page;
    if (auto mx = args.value("--max"); !mx.empty()) req.max_hits = std::stoull(mx);

    // Physical pages of what has virtual addresses only: the module itself
    // (skipped), other modules and task stacks (named).
    std::map<uint64_t, Owner> owners;  // physical page -> owner
    size_t untranslated = 0;
    auto pages = [&](uint64_t start, uint64_t size, auto&& fn) {
        for (uint64_t v = start & ~(page - 1); v < start + size; v += page) {
            if (auto pa = dump.to_phys(v)) fn(*pa / page, v);
            else ++untranslated;
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
                owners[pfn] = {"stack", "task " + std::to_string(t.id) + " (" + t.name + ")", v};
            });

    // The kernel image is physically contiguous from _text to _end.
    const uint64_t text = sys.kernel().symbol("_text"), end = sys.kernel().symbol("_end");
    const auto text_pa = dump.to_phys(text);
    const uint64_t direct_map = sys.kernel().read_u64(sys.kernel().symbol("page_offset_base")).value_or(0);

    req.progress = [&](uint64_t done, uint64_t total) {
        if (!args.flag("--quiet")) progress(dbg, "scanned " + std::to_string(done * 100 / std::max<uint64_t>(total, 1)) + "%");
    };
    RefScanResult res = scan_refs(req);

    Json j;
    j.begin_object().field("module", m.name);
    j.key("refs").begin_array();
    std::string text_out;
    std::map<std::string, size_t> by_kind;
    for (const auto& h : res.hits) {
        std::string where_kind, where;
        uint64_t vaddr = 0;
        if (text_pa && h.phys >= *text_pa && h.phys < *text_pa + (end - text)) {
            vaddr = text + (h.phys - *text_pa);
            where_kind = "kernel";
            where = symbol_at(target, vaddr);
        } else if (auto it = owners.find(h.phys / page); it != owners.end()) {
            vaddr = it->second.vaddr + h.phys % page;
            where_kind = it->second.kind;
            where = it->second.kind == "module" ? symbol_at(target, vaddr) : it->second.name;
            if (where.empty()) where = it->second.name;
        } else {
            vaddr = direct_map ? direct_map + h.phys : 0;
            where_kind = "unknown";  // slab objects and page owners are not named yet
        }
        ++by_kind[where_kind];
        const std::string target_sym = symbol_at(target, h.value);
        j.begin_object()
            .field_addr("phys", h.phys)
            .field_addr("vaddr", vaddr)
            .field_addr("value", h.value)
            .field("points_to", target_sym)
            .field("container", where_kind)
            .field("where", where)
            .field("severity", std::string(where_kind == "unknown" ? "advisory" : "evidence"))
            .end_object();
        text_out += "  " + hex_addr(vaddr) + " " + (where.empty() ? "?" : where) + " [" + where_kind + "] -> " +
                    hex_addr(h.value) + " " + target_sym + "\n";
    }
    j.end_array();
    const double gbs = res.seconds > 0 ? res.bytes_scanned / res.seconds / 1e9 : 0;
    j.field("bytes_scanned", res.bytes_scanned)
        .field("bytes_unreadable", res.bytes_unreadable)
        .field("seconds", res.seconds)
        .field("gb_per_s", gbs)
        .field("truncated", res.truncated)
        .field("untranslated_pages", static_cast<uint64_t>(untranslated));
    j.end_object();
    if (args.flag("--json")) {
        out = j.str() + "\n";
        return;
    }
    out = "Words in memory pointing into " + m.name + " (outside its own memory):\n" + text_out;
    char line[256];
    snprintf(line, sizeof line, "%zu references (%zu kernel, %zu module, %zu stack, %zu unknown); %.1f MiB scanned in %.2f s (%.2f GB/s)%s\n",
             res.hits.size(), by_kind["kernel"], by_kind["module"], by_kind["stack"], by_kind["unknown"],
             res.bytes_scanned / 1048576.0, res.seconds, gbs, res.truncated ? "; stopped at --max" : "");
    out += line;
    if (res.bytes_unreadable) out += std::to_string(res.bytes_unreadable) + " bytes of memory could not be read\n";
}

}  // namespace

void register_refs(lldb::SBCommand& kmod) {
    add_command(kmod, {"refs", "Every word in the dumped memory that points into a module.",
                       "kmod refs MODULE [--json] [--max N] [--quiet]\n"
                       "  Scans all physical memory the dump holds for 8-byte words whose value lies in\n"
                       "  MODULE's memory (its own pages excluded) and names what holds each one: a\n"
                       "  kernel symbol, another module, a task's stack, or 'unknown' (direct-map\n"
                       "  memory: slab objects and page owners are not named yet; advisory).\n"
                       "  --max N   stop after N references (default 100000)",
                       {"--json", "--quiet"}, {"--max"}, refs});
}

}  // namespace kq
