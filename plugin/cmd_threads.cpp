// kmod threads: every kernel task and its stack (the project's unwinder),
// frames inside a module marked.
#include <unordered_map>

#include "plugin/commands.h"
#include "plugin/session.h"
#include "plugin/stack.h"

namespace kq {
namespace {

void threads(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    auto& sys = s.kernel_system();
    std::string want = args.value("--module");
    if (!want.empty()) want = s.module(want).name;
    const bool all = want.empty() || args.flag("--all");
    const bool methods = args.flag("--methods");
    const bool scan = args.flag("--scan");
    KernelUnwinder& unw = s.unwinder();

    const auto& tasks = sys.threads();
    Json j;
    j.begin_object();
    j.key("module");
    if (want.empty()) j.null(); else j.value(want);
    j.key("threads").begin_array();
    std::string text;
    size_t matching = 0, incomplete = 0, scan_matching = 0, no_regs = 0;
    for (size_t i = 0; i < tasks.size(); ++i) {
        if (i % 256 == 255) progress(dbg, "unwound " + std::to_string(i + 1) + "/" + std::to_string(tasks.size()) + " tasks");
        const Thread& t = tasks[i];
        Stack st = stack_of(sys, unw, t);
        incomplete += !st.complete && !t.regs_unknown;
        no_regs += t.regs_unknown;
        bool hit = false;
        for (const auto& f : st.frames) hit |= !want.empty() && f.module == want;
        std::vector<ScanWord> words;
        if (scan) words = scan_of(sys, unw, t, st, want);
        matching += hit;
        scan_matching += !hit && !want.empty() && !words.empty();
        if (!all && !hit && words.empty()) continue;
        const int64_t pid = t.id >= kIdleThreadIdBase ? 0 : t.id;
        j.begin_object()
            .field("pid", pid)
            .field("tid", t.id)
            .field("comm", t.name)
            .field("state", t.state)
            .field("cpu", t.cpu)
            .field("on_cpu", t.on_cpu)
            .field_addr("task", t.task)
            .field("in_module", hit)
            .field("complete", st.complete);
        j.key("frames").begin_array();
        for (size_t k = 0; k < st.frames.size(); ++k) frame_json(j, k, st.frames[k], want);
        j.end_array();
        if (scan) {
            j.key("scan").begin_array();
            for (const auto& w : words) scan_json(j, w);
            j.end_array();
        }
        j.end_object();
        text += (hit ? "* " : "") + std::to_string(pid) + " " + t.name + "  " + describe_thread_state(t) + "\n";
        for (size_t k = 0; k < st.frames.size(); ++k)
            text += frame_line(k, st.frames[k], !want.empty() && st.frames[k].module == want, methods);
        for (const auto& w : words) text += scan_line(w);
    }
    j.end_array();
    j.field("total_threads", static_cast<uint64_t>(tasks.size()))
        .field("matching_threads", static_cast<uint64_t>(matching))
        .field("incomplete_stacks", static_cast<uint64_t>(incomplete))
        .field("no_registers", static_cast<uint64_t>(no_regs));
    if (scan) j.field("scan_only_threads", static_cast<uint64_t>(scan_matching));
    j.end_object();
    if (args.flag("--json")) {
        out = j.str() + "\n";
        return;
    }
    out = text;
    if (want.empty()) out += std::to_string(tasks.size()) + " tasks";
    else out += std::to_string(matching) + " of " + std::to_string(tasks.size()) + " tasks have a frame in " + want;
    if (scan && !want.empty())
        out += "; " + std::to_string(scan_matching) + " more have only scanned (advisory) return addresses into it";
    if (no_regs) out += "; " + std::to_string(no_regs) + " running tasks have no registers in the kernel's memory";
    out += incomplete ? "; " + std::to_string(incomplete) + " stacks did not reach their base (see kmod bt)\n" : "\n";
}

}  // namespace

void register_threads(lldb::SBCommand& kmod) {
    add_command(kmod, {"threads", "Every kernel task and its stack; frames inside a module marked.",
                       "kmod threads [--module M [--all]] [--methods] [--scan] [--json]\n"
                       "  --module M  show the tasks with a frame in module M (frames marked '=>');\n"
                       "              with --all, every task, still marking M's frames\n"
                       "  --methods   show how each frame was found (orc, dwarf_cfi, prologue, ...)\n"
                       "  --scan      also list validated return addresses into modules (M only, with\n"
                       "              --module) found on each stack outside its unwound frames ('?'):\n"
                       "              advisory evidence, stale words from returned calls included\n"
                       "  --json      machine-readable output\n"
                       "Stacks come from kquiesce's own unwinder (ORC, DWARF CFI, frame pointers,\n"
                       "prologue analysis, validated stack scan), not from LLDB's.",
                       {"--json", "--all", "--methods", "--scan"}, {"--module"}, threads});
}

}  // namespace kq
