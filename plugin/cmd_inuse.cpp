// kmod inuse M: what still uses module M, and is it safe to unload it now.
#include "inuse/report.h"
#include "kernel/linux/survey.h"
#include "plugin/commands.h"
#include "plugin/session.h"
#include "plugin/stack.h"

namespace kq {
namespace {

constexpr const char* kSchema = "kquiesce.inuse/1";

// "kq_sleep_wait+0x40" from LLDB's view of vmlinux and the loaded .ko files.
std::string symbolize(lldb::SBTarget& target, uint64_t addr) {
    lldb::SBAddress a = target.ResolveLoadAddress(addr);
    lldb::SBSymbol sym = a.GetSymbol();
    if (!sym.IsValid() || !sym.GetName()) return {};
    const uint64_t start = sym.GetStartAddress().GetLoadAddress(target);
    std::string s = sym.GetName();
    if (start != LLDB_INVALID_ADDRESS && start <= addr && addr != start) s += "+" + hex_addr(addr - start);
    return s;
}

void render_json(const Report& r, std::string& out) {
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

void render_text(const Report& r, std::string& out) {
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

void inuse(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    if (args.positional.size() != 1) throw Error("usage: kmod inuse MODULE [--json] [--no-scan] [--quiet]");
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    auto& sys = s.system();
    const Module* m = &s.module(args.positional[0]);
    const bool quiet = args.flag("--quiet");
    auto say = [&](const std::string& line) {
        if (!quiet) progress(dbg, line);
    };

    InuseInput in;
    in.module = m;
    in.tasks_total = sys.threads().size();
    LinuxUnwinder& unw = s.unwinder();
    const size_t n = sys.threads().size();
    for (size_t i = 0; i < n; ++i) {
        if (n >= 512 && i % 256 == 0) say("unwinding tasks: " + std::to_string(i * 100 / n) + "%");
        const Thread& t = sys.threads()[i];
        ThreadStack ts;
        ts.thread = &t;
        ts.frames = unw.unwind(t);
        for (const auto& w : unw.unwinder().scan(t, ts.frames))
            if (w.where != StackWord::Where::frame) ts.scanned.push_back(w.value);
        ts.scan_done = true;
        in.stacks.push_back(std::move(ts));
    }
    in.survey = survey_linux({sys.kernel(), sys.threads(), sys.modules()},
                             [&](const std::string& p) { say("reading " + p); });
    in.survey.coverage.push_back(args.flag("--no-scan")
                                     ? Coverage{"memory reference scan", "nothing", false, "skipped (--no-scan)"}
                                     : Coverage{"memory reference scan", "nothing", false, "not read by this version of kquiesce"});
    in.symbolize = [&](uint64_t a) { return symbolize(target, a); };
    Report r = analyze(in);
    if (args.flag("--json")) render_json(r, out);
    else render_text(r, out);
}

}  // namespace

void register_inuse(lldb::SBCommand& kmod) {
    add_command(kmod, {"inuse", "What still uses a module, and whether unloading it now is safe.",
                       "kmod inuse MODULE [--json] [--no-scan] [--quiet]\n"
                       "  --json     machine-readable report (schema in docs/json.md)\n"
                       "  --no-scan  skip the raw memory reference scan (the verdict cannot be SAFE then)\n"
                       "  --quiet    no progress lines\n"
                       "Evidence is blocking (a live path into the module: a thread in it, a pending\n"
                       "timer or work item, a registered callback ...), refused-by-kernel (refcount,\n"
                       "users, state) or advisory (may be stale). Verdict: SAFE, BUSY (only the\n"
                       "kernel's accounting refuses), UNSAFE (blocking evidence) or UNKNOWN (some\n"
                       "check did not cover everything; the report says which).",
                       {"--json", "--no-scan", "--quiet"}, {}, inuse});
}

}  // namespace kq
