// The in-use analysis of one module on the session's kernel (stacks,
// subsystem providers, the memory reference scan) and its rendering: what
// `kmod inuse` prints and what `kmod unload` and `kmod quiesce` decide by.
#include "plugin/module_inuse.h"

#include <map>

#include "inuse/collect.h"
#include "plugin/json.h"
#include "plugin/module_refs.h"
#include "plugin/stack.h"

namespace kq {
namespace {

constexpr const char* kSchema = "kquiesce.inuse/1";

// The raw scan's hits as advisory evidence: named one by one when kernel
// data or a slab object holds them, counted per kind of container otherwise
// (`kmod refs` lists them all). The kernel's bookkeeping of the loaded
// module is counted in the coverage, not evidence.
void add_memory_refs(Session& s, lldb::SBTarget& target, const Module& m,
                     const std::function<void(const std::string&)>& say, Report& r) {
    Coverage c{"memory reference scan", "", true, ""};
    try {
        ModuleRefs found = find_module_refs(s, target, m, 100000, say);
        std::map<std::pair<std::string, bool>, size_t> counts;  // (container, advisory) -> words
        for (const auto& ref : found.refs) {
            if (ref.weight == RefWeight::bookkeeping) continue;
            if (ref.container == "kernel" || ref.container == "percpu")
                r.evidence.push_back({"memory_ref", Severity::advisory, ref.where, ref.value, ref.points_to, ref.vaddr,
                                      "kernel data holds a pointer into the module", {}});
            else if (ref.container == "slab")
                r.evidence.push_back({"memory_ref", Severity::advisory, ref.where, ref.value, ref.points_to, ref.vaddr,
                                      ref.weight == RefWeight::advisory
                                          ? "free or unused slab memory holds a stale pointer into the module"
                                          : "a slab object holds a pointer into the module",
                                      {}});
            else
                ++counts[{ref.container, ref.weight == RefWeight::advisory}];
        }
        for (const auto& [key, n] : counts) {
            const auto& [container, stale] = key;
            std::string subject = container == "unknown" ? "direct-mapped memory"
                                  : container == "page"  ? "pages that are not slab"
                                                         : container + " memory";
            if (stale) subject += " (free, dead or unowned)";
            r.evidence.push_back({"memory_ref", Severity::advisory, subject, 0, "", 0,
                                  std::to_string(n) + " words point into the module (kmod refs " + m.name + " lists them)", {}});
        }
        const auto& st = found.stats;
        char b[160];
        // A dump reads at GB/s, a live kernel's stub at tens of MB/s.
        const double rate = st.seconds > 0 ? st.bytes_scanned / st.seconds : 0.0;
        snprintf(b, sizeof b, "%.0f MiB of physical memory in %.1f s, %.2f %s", st.bytes_scanned / 1048576.0, st.seconds,
                 rate >= 1e9 ? rate / 1e9 : rate / 1e6, rate >= 1e9 ? "GB/s" : "MB/s");
        c.covered = b;
        c.covered += "; " + std::to_string(found.refs.size()) + " words point into the module, " +
                     std::to_string(found.count(RefWeight::bookkeeping)) + " of them the kernel's bookkeeping of it";
        if (!found.bookkeeping_problems.empty())
            c.covered += " (not identified: " + found.bookkeeping_problems.front() +
                         (found.bookkeeping_problems.size() > 1 ? " and " + std::to_string(found.bookkeeping_problems.size() - 1) + " more" : "") + ")";
        if (st.bytes_unreadable || st.truncated) {
            c.complete = false;
            c.gap = st.truncated ? "stopped at 100000 references" : std::to_string(st.bytes_unreadable) + " bytes unreadable";
        }
    } catch (const Error& e) {
        c.covered = "nothing";
        c.complete = false;
        c.gap = e.what();
    }
    r.coverage.push_back(std::move(c));
}

}  // namespace

void render_inuse_json(const Report& r, std::string& out) {
    Json j;
    j.begin_object().field("schema", std::string(kSchema)).field("module", r.module)
        .field("verdict", std::string(to_string(r.verdict)));
    j.key("reasons").begin_array();
    for (const auto& s : r.reasons) j.value(s);
    j.end_array();
    j.key("evidence").begin_array();
    for (const auto& e : r.evidence) {
        j.begin_object()
            .field("kind", e.kind)
            .field("severity", std::string(to_string(e.severity)))
            .field("subject", e.subject)
            .field_addr("address", e.address)
            .field("symbol", e.symbol);
        j.key("object");
        if (e.object) j.value(hex_addr(e.object)); else j.null();
        j.field("detail", e.detail);
        j.key("tasks").begin_array();
        for (auto t : e.tasks) j.value(t);
        j.end_array().end_object();
    }
    j.end_array();
    j.key("coverage").begin_array();
    for (const auto& c : r.coverage) {
        j.begin_object().field("provider", c.provider).field("covered", c.covered).field("complete", c.complete);
        j.key("gap");
        if (c.gap.empty()) j.null(); else j.value(c.gap);
        j.end_object();
    }
    j.end_array().end_object();
    out = j.str() + "\n";
}

void render_inuse_text(const Report& r, std::string& out) {
    out = "In-use report for module " + r.module + "\n";
    for (Severity sev : {Severity::blocking, Severity::refused_by_kernel, Severity::advisory}) {
        std::string block;
        for (const auto& e : r.evidence) {
            if (e.severity != sev) continue;
            block += "  " + e.kind + ": " + e.subject + "  " + hex_addr(e.address);
            if (!e.symbol.empty()) block += " " + e.symbol;
            if (!e.detail.empty()) block += "  (" + e.detail + ")";
            block += "\n";
        }
        if (!block.empty()) out += std::string(to_string(sev)) + ":\n" + block;
    }
    if (r.evidence.empty()) out += "no evidence found\n";
    out += "coverage:\n";
    for (const auto& c : r.coverage)
        out += std::string("  ") + (c.complete ? "[full] " : "[gap]  ") + c.provider + ": " + c.covered +
               (c.gap.empty() ? "" : " -- " + c.gap) + "\n";
    out += "verdict: " + std::string(to_string(r.verdict)) + "\n";
    for (const auto& s : r.reasons) out += "  " + s + "\n";
}

namespace {

// Through /proc/kcore the kernel runs while it is read: a task that ran
// between the read of its switch frame and that of its stack unwinds into
// garbage, a list changes under its walk. A report with such gaps is made
// again from a fresh read, a few times at most.
constexpr int kKcoreAttempts = 3;

bool settled(const Report& r) {
    for (const auto& c : r.coverage)
        if (!c.complete && c.provider != "memory reference scan") return false;
    return true;
}

Report inuse_report_once(Session& s, lldb::SBTarget& target, const std::string& name, bool scan,
                         const std::function<void(const std::string&)>& say) {
    // The system first: on a live kernel it drops an unwinder of an earlier stop.
    KernelSystem& sys = s.kernel_system();
    const Module& module = s.module(name);
    InuseInput in = collect_inuse(sys, s.unwinder(), module, say);
    in.symbolize = [&](uint64_t a) { return symbol_at(target, a, false); };
    Report scan_report;
    if (!scan) scan_report.coverage.push_back({"memory reference scan", "nothing", false, "skipped (--no-scan)"});
    else add_memory_refs(s, target, module, say, scan_report);
    in.extra_evidence = std::move(scan_report.evidence);
    in.extra_coverage = std::move(scan_report.coverage);
    return analyze(in);
}

}  // namespace

Report inuse_report(Session& s, lldb::SBTarget& target, std::string name, bool scan,
                    const std::function<void(const std::string&)>& say) {
    for (int attempt = 1;; ++attempt) {
        Report r = inuse_report_once(s, target, name, scan, say);
        if (!s.kcore() || attempt == kKcoreAttempts || settled(r)) return r;
        if (say) say("coverage incomplete on the running kernel (it changed while read): reading it again");
        s.refresh_kcore();
    }
}

}  // namespace kq
