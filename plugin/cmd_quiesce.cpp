// kmod quiesce M / kmod unquiesce M: the MOD_QUIESCE analogue on a live
// Linux kernel. The module's state becomes GOING, so try_module_get()
// fails and the kernel gives it no new users (no new opens of its
// devices, no new references); then the kernel runs and the in-use
// analysis is polled until its users are gone or the time runs out.
#include <chrono>

#include "inuse/unload_policy.h"
#include "kernel/linux/unload_path.h"
#include "plugin/commands.h"
#include "plugin/json.h"
#include "plugin/live_control.h"
#include "plugin/module_inuse.h"

namespace kq {
namespace {

using Clock = std::chrono::steady_clock;

void set_state(LiveTarget& live, const LinuxUnloadPath& path, uint64_t module, int32_t v, const std::string& name) {
    LiveTarget::WriteGrant grant(live);
    if (!live.live_memory().write(path.state_address(module), &v, sizeof v))
        throw Error("the GDB stub refused to write " + name + "'s state");
}

void quiesce(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    if (args.positional.size() != 1) throw Error("usage: kmod quiesce MODULE [--timeout S] [--no-scan] [--json] [--quiet]");
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    LiveTarget& live = live_kernel(s, "kmod quiesce");
    const bool quiet = args.flag("--quiet");
    auto say = [&](const std::string& line) {
        if (!quiet) progress(dbg, line);
    };
    const auto timeout_s = parse_number(args.value("--timeout", "30"));
    if (!timeout_s) throw Error("--timeout wants seconds");
    const Module& m = s.module(args.positional[0]);
    const std::string name = m.name;
    const uint64_t addr = m.addr;
    LinuxUnloadPath path(s.system().kernel());
    auto& quiesced = quiesced_modules(s);
    if (!quiesced.count(name)) {
        if (m.state != "Live") throw Error(name + " is " + m.state + ", not Live: nothing to quiesce");
        set_state(live, path, addr, path.going_state(), name);
        quiesced.insert(name);
        say(name + " quiesced: state GOING, the kernel gives it no new users ('kmod unquiesce " + name + "' undoes it)");
    }

    const auto start = Clock::now(), deadline = start + std::chrono::seconds(*timeout_s);
    std::vector<std::string> still;
    bool ok = false;
    for (;;) {
        live.refresh_tasks();
        // Polls without the memory scan (its hits are only advisory); the
        // final report has it.
        Report r = inuse_report(s, target, name, false, [](const std::string&) {});
        still.clear();
        ok = drained(r, user_task(s.system()), &still);
        if (ok || Clock::now() >= deadline) break;
        const auto secs = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
        say(std::to_string(secs) + " s: still held by " + std::to_string(still.size()) + ": " + still.front());
        if (live.run(std::chrono::milliseconds(1000)) == LiveTarget::Run::gone)
            throw Error("the live kernel went away while draining");
    }
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    Report final_report = inuse_report(s, target, name, !args.flag("--no-scan"), say);
    resync_lldb(target, live);

    if (args.flag("--json")) {
        std::string report;
        render_inuse_json(final_report, report);
        while (!report.empty() && report.back() == '\n') report.pop_back();
        Json j;
        j.begin_object().field("schema", std::string("kquiesce.quiesce/1")).field("module", name)
            .field("quiesced", true).field("drained", ok).field("seconds", waited);
        j.key("still").begin_array();
        for (const auto& l : still) j.value(l);
        j.end_array().key("report").raw(report).end_object();
        out = j.str() + "\n";
        return;
    }
    char b[64];
    snprintf(b, sizeof b, "%.1f", waited);
    out = name + (ok ? " drained after " + std::string(b) + " s: no user left; 'kmod unload " + name + "' may unload it\n"
                     : " not drained after " + std::string(b) + " s; still held by:\n");
    for (const auto& l : still) out += "  " + l + "\n";
    out += name + " stays quiesced (state GOING) until 'kmod unload " + name + "' or 'kmod unquiesce " + name + "'\n";
}

void unquiesce(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    if (args.positional.size() != 1) throw Error("usage: kmod unquiesce MODULE");
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    LiveTarget& live = live_kernel(s, "kmod unquiesce");
    const Module& m = s.module(args.positional[0]);
    auto& quiesced = quiesced_modules(s);
    if (!quiesced.count(m.name)) throw Error(m.name + " was not quiesced by kmod quiesce (its state is " + m.state + ")");
    LinuxUnloadPath path(s.system().kernel());
    set_state(live, path, m.addr, path.live_state(), m.name);
    quiesced.erase(m.name);
    out = m.name + " is LIVE again\n";
    if (args.flag("--json")) out = "{\"schema\":\"kquiesce.unquiesce/1\",\"module\":\"" + m.name + "\",\"state\":\"Live\"}\n";
}

}  // namespace

void register_quiesce(lldb::SBCommand& kmod) {
    add_command(kmod, {"quiesce", "Refuse a module new users and wait until its users are gone (live). WRITES to the target.",
                       "kmod quiesce MODULE [--timeout S] [--no-scan] [--json] [--quiet]\n"
                       "Sets the module's state to GOING (try_module_get() fails: no new opens, no new\n"
                       "references), lets the kernel run and polls the in-use analysis every second until\n"
                       "its users are gone (refcount 0, no open file, no user task inside it) or S seconds\n"
                       "(default 30) pass, printing what still holds it. What is the module's own (its\n"
                       "timers, kthreads, registrations) its exit function undoes at the unload. The module\n"
                       "stays quiesced until 'kmod unload' (which makes it LIVE for the kernel's unload) or\n"
                       "'kmod unquiesce'. Writes the module's state; the kernel is stopped after it.",
                       {"--no-scan", "--json", "--quiet"}, {"--timeout"}, quiesce});
    add_command(kmod, {"unquiesce", "Undo kmod quiesce: the module is LIVE again. WRITES to the target.",
                       "kmod unquiesce MODULE [--json]\nRestores the state kmod quiesce changed (GOING -> LIVE).",
                       {"--json"}, {}, unquiesce});
}

}  // namespace kq
