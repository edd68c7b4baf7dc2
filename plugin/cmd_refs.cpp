// kmod refs M: every word in physical memory that points into module M,
// attributed to what holds it (kernel symbol, another module, a task's
// stack, a slab object, a page) and weighed: evidence, advisory (maybe
// stale) or the kernel's bookkeeping of the loaded module.
#include <map>

#include "plugin/module_refs.h"
#include "plugin/commands.h"
#include "plugin/session.h"
#include "plugin/stack.h"

namespace kq {
namespace {

void refs(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    if (args.positional.size() != 1) throw Error("usage: kmod refs MODULE [--json] [--max N]");
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    const Module& m = s.module(args.positional[0]);
    size_t max_hits = 100000;
    if (auto mx = args.value("--max"); !mx.empty()) {
        auto n = parse_number(mx);
        if (!n) throw Error("--max wants a number: " + mx);
        max_hits = *n;
    }
    ModuleRefs found = find_module_refs(s, target, m, max_hits, [&](const std::string& line) {
        if (!args.flag("--quiet")) progress(dbg, line);
    });
    const RefScanResult& res = found.stats;

    Json j;
    j.begin_object().field("module", m.name);
    j.key("refs").begin_array();
    std::string text_out;
    std::map<std::string, size_t> by_kind;
    for (const auto& h : found.refs) {
        ++by_kind[h.container];
        j.begin_object()
            .field_addr("phys", h.phys)
            .field_addr("vaddr", h.vaddr)
            .field_addr("value", h.value)
            .field("points_to", h.points_to)
            .field("container", h.container)
            .field("where", h.where)
            .field("severity", std::string(to_string(h.weight)))
            .end_object();
        // Without a virtual address (memory no one is known to map) the physical one.
        text_out += "  " + (h.vaddr ? hex_addr(h.vaddr) : "phys " + hex_addr(h.phys)) + " " + (h.where.empty() ? "?" : h.where) + " [" + h.container +
                    (h.weight == RefWeight::advisory ? ", advisory" : "") + "] -> " + hex_addr(h.value) + " " +
                    h.points_to + "\n";
    }
    j.end_array();
    const double gbs = res.seconds > 0 ? res.bytes_scanned / res.seconds / 1e9 : 0;
    j.field("bytes_scanned", res.bytes_scanned)
        .field("bytes_unreadable", res.bytes_unreadable)
        .field("seconds", res.seconds)
        .field("gb_per_s", gbs)
        .field("truncated", res.truncated)
        .field("untranslated_pages", static_cast<uint64_t>(found.untranslated_pages));
    j.key("bookkeeping_problems").begin_array();
    for (const auto& p : found.bookkeeping_problems) j.value(p);
    j.end_array();
    j.end_object();
    if (args.flag("--json")) {
        out = j.str() + "\n";
        return;
    }
    out = "Words in memory pointing into " + m.name + " (outside its own memory):\n" + text_out;
    std::string kinds;
    for (const auto& [kind, n] : by_kind) kinds += (kinds.empty() ? "" : ", ") + std::to_string(n) + " " + kind;
    char line[256];
    snprintf(line, sizeof line, "%zu references (%s): %zu evidence, %zu advisory, %zu bookkeeping; %.1f MiB scanned in %.2f s (%.2f GB/s)%s\n",
             found.refs.size(), kinds.empty() ? "none" : kinds.c_str(), found.count(RefWeight::evidence),
             found.count(RefWeight::advisory), found.count(RefWeight::bookkeeping), res.bytes_scanned / 1048576.0,
             res.seconds, gbs, res.truncated ? "; stopped at --max" : "");
    out += line;
    for (const auto& p : found.bookkeeping_problems) out += "bookkeeping not identified: " + p + "\n";
    if (res.bytes_unreadable) out += std::to_string(res.bytes_unreadable) + " bytes of memory could not be read\n";
}

}  // namespace

void register_refs(lldb::SBCommand& kmod) {
    add_command(kmod, {"refs", "Every word in memory that points into a module.",
                       "kmod refs MODULE [--json] [--max N] [--quiet]\n"
                       "  Scans all physical memory (what the dump holds; a live kernel's RAM, through\n"
                       "  its direct map) for 8-byte words whose value lies in MODULE's memory (its own\n"
                       "  pages excluded) and names what holds each one: a kernel symbol, another\n"
                       "  module, a task's stack, a slab object (cache, object, offset; advisory when\n"
                       "  the object is free), another page (advisory), or 'bookkeeping': the kernel's\n"
                       "  own records of the loaded module (its struct module, sysfs attributes,\n"
                       "  vmap_area, ftrace records), not a use of it.\n"
                       "  On FreeBSD a plain scan: words in the kernel image, other modules and\n"
                       "  stacks are named, the rest is 'unknown' memory (advisory).\n"
                       "  --max N   stop after N references (default 100000)",
                       {"--json", "--quiet"}, {"--max"}, refs});
}

}  // namespace kq
