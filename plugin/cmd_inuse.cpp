// kmod inuse M: what still uses module M, and is it safe to unload it now.
#include "plugin/commands.h"
#include "plugin/module_inuse.h"

namespace kq {
namespace {

void inuse(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    if (args.positional.size() != 1) throw Error("usage: kmod inuse MODULE [--json] [--no-scan] [--quiet]");
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    s.kernel_system();  // live: refuses while the kernel runs
    const Module* m = &s.module(args.positional[0]);
    const bool quiet = args.flag("--quiet");
    auto say = [&](const std::string& line) {
        if (!quiet) progress(dbg, line);
    };

    Report r = inuse_report(s, target, m->name, !args.flag("--no-scan"), say);
    if (args.flag("--json")) render_inuse_json(r, out);
    else render_inuse_text(r, out);
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
