// kmod bt: one task's stack from the project's unwinder, with how each frame
// was found and why the unwind stopped.
#include "plugin/commands.h"
#include "plugin/session.h"
#include "plugin/stack.h"

namespace kq {
namespace {

const Thread& pick(const KernelSystem& sys, lldb::SBTarget& target, const Args& args) {
    int64_t tid = -1;
    if (!args.positional.empty()) {
        auto n = parse_number(args.positional[0]);
        if (!n || *n > uint64_t(INT64_MAX)) throw Error("not a thread id: " + args.positional[0]);
        tid = static_cast<int64_t>(*n);
    } else {
        lldb::SBThread th = target.GetProcess().GetSelectedThread();
        if (!th.IsValid()) throw Error("no thread selected: give a thread id (kmod bt TID)");
        tid = static_cast<int64_t>(th.GetThreadID());
    }
    for (const auto& t : sys.threads())
        if (t.id == tid) return t;
    throw Error("no task with thread id " + std::to_string(tid));
}

void bt(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    const Thread& t = pick(s.kernel_system(), target, args);
    Stack st = stack_of(s.kernel_system(), s.unwinder(), t);
    if (args.flag("--json")) {
        Json j;
        j.begin_object()
            .field("tid", t.id)
            .field("comm", t.name)
            .field("state", t.state)
            .field("complete", st.complete);
        j.key("frames").begin_array();
        for (size_t k = 0; k < st.frames.size(); ++k) frame_json(j, k, st.frames[k], "");
        j.end_array().end_object();
        out = j.str() + "\n";
        return;
    }
    out = "tid " + std::to_string(t.id) + " " + t.name + "  " + describe_thread_state(t) + "\n";
    for (size_t k = 0; k < st.frames.size(); ++k) out += frame_line(k, st.frames[k], false, true);
    out += st.complete ? "reached the base of the stack\n" : "incomplete: the unwind did not reach the base of the stack\n";
}

}  // namespace

void register_bt(lldb::SBCommand& kmod) {
    add_command(kmod, {"bt", "One task's stack from kquiesce's unwinder, with the method per frame.",
                       "kmod bt [TID] [--json]\n"
                       "  TID     the task's thread id as in 'thread list' (default: the selected thread)\n"
                       "  --json  machine-readable output\n"
                       "Each frame shows how it was found (initial, orc, dwarf_cfi, frame_pointer,\n"
                       "prologue, stack_scan) and a confidence; the last line says whether the\n"
                       "unwind reached the base of the stack.",
                       {"--json"}, {}, bt});
}

}  // namespace kq
