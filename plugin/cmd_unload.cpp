// kmod unload M: the guarded unload. Breakpoints on the kernel's unload
// path; at the delete_module entry the full analysis decides whether the
// syscall goes on or returns -EBUSY (veto); at free_module, after the
// module's exit function ran, anything still reaching into the module
// keeps its memory (guard) instead of freeing it under a live pointer.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

#include "inuse/unload_policy.h"
#include "kernel/linux/unload_path.h"
#include "plugin/commands.h"
#include "plugin/json.h"
#include "plugin/live_control.h"
#include "plugin/module_inuse.h"
#include "plugin/stack.h"

namespace kq {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kEbusy = 16;

struct Check {
    Report report;
    UnloadStep step;
    std::string where;  // "entry" or "free"
    std::string task;   // the task that unloads
};

struct Outcome {
    std::string module;
    std::string result = "not_unloaded";  // unloaded, vetoed, guarded, refused_by_kernel, not_unloaded
    std::vector<Check> checks;
    std::optional<int64_t> syscall_return;
    bool forced_by_caller = false;  // the syscall asked for a forced unload (rmmod -f)
    std::string after;              // the module after it: "gone", or its state
    std::vector<std::string> notes;
    const HostCommand* trigger = nullptr;
};

std::string task_on(const LiveTarget& live) {
    const Thread* t = live.task_on_vcpu(live.stop_vcpu());
    return t ? task_label(*t) : "CPU " + std::to_string(live.stop_vcpu());
}

void render_json(const Outcome& o, std::string& out) {
    Json j;
    j.begin_object().field("schema", std::string("kquiesce.unload/1")).field("module", o.module)
        .field("result", o.result).field("forced_by_caller", o.forced_by_caller);
    j.key("syscall_return");
    if (o.syscall_return) j.value(*o.syscall_return); else j.null();
    j.field("after", o.after);
    j.key("checks").begin_array();
    for (const auto& c : o.checks) {
        std::string report;
        render_inuse_json(c.report, report);
        while (!report.empty() && report.back() == '\n') report.pop_back();
        j.begin_object().field("at", c.where).field("task", c.task).field("proceed", c.step.proceed);
        j.key("reasons").begin_array();
        for (const auto& r : c.step.reasons) j.value(r);
        j.end_array().key("report").raw(report).end_object();
    }
    j.end_array();
    j.key("trigger");
    if (o.trigger) {
        auto* t = const_cast<HostCommand*>(o.trigger);
        j.begin_object().field("command", t->command()).field("finished", t->finished())
            .field("exit", t->exit_code()).field("output", t->output()).end_object();
    } else {
        j.null();
    }
    j.key("notes").begin_array();
    for (const auto& n : o.notes) j.value(n);
    j.end_array().end_object();
    out = j.str() + "\n";
}

void render_text(const Outcome& o, std::string& out) {
    out = "Unload of " + o.module + ": " + o.result + "\n";
    for (const auto& c : o.checks) {
        out += "  at the " + std::string(c.where == "entry" ? "delete_module entry" : "free (after the exit function)") +
               " (" + c.task + "): " + to_string(c.report.verdict) + ", " + (c.step.proceed ? "went on" : c.where == "entry" ? "vetoed" : "guarded") + "\n";
        for (const auto& r : c.step.reasons) out += "    " + r + "\n";
    }
    if (o.syscall_return) out += "  delete_module returned " + std::to_string(*o.syscall_return) + "\n";
    out += "  module now: " + o.after + "\n";
    if (o.trigger) {
        auto* t = const_cast<HostCommand*>(o.trigger);
        out += "  trigger '" + t->command() + "': " +
               (t->finished() ? "exit " + std::to_string(t->exit_code()) : std::string("still running")) + "\n";
        std::string output = t->output();
        if (!output.empty()) out += "    " + output.substr(0, 2000) + (output.back() == '\n' ? "" : "\n");
    }
    for (const auto& n : o.notes) out += "  note: " + n + "\n";
}

void render(const Args& args, const Outcome& o, std::string& out) {
    if (args.flag("--json")) render_json(o, out);
    else render_text(o, out);
}

// Through /proc/kcore the kernel cannot be stopped: the check runs first,
// then delete_module(2) is called from here as rmmod calls it. The kernel
// still refuses by its own rules; nothing can guard the free.
void unload_kcore(Session& s, lldb::SBTarget& target, const Args& args, bool force, bool scan,
                  const std::function<void(const std::string&)>& say, std::string& out) {
    if (!args.value("--trigger").empty())
        throw Error("--trigger drives a guest behind a GDB stub; with --kcore, kmod unload calls delete_module(2) itself");
    Outcome o;
    o.module = s.module(args.positional[0]).name;
    o.forced_by_caller = force;
    Check c;
    c.where = "entry";
    c.task = "kquiesce (pid " + std::to_string(getpid()) + ")";
    say("analysing " + o.module + " before calling delete_module");
    c.report = inuse_report(s, target, o.module, scan, say);
    c.step = decide_unload_entry(c.report, force, false, user_task(s.system()));
    const bool proceed = c.step.proceed;
    o.checks.push_back(std::move(c));
    if (!proceed) {
        o.result = "vetoed";
        o.notes.push_back("delete_module(2) was not called");
    } else {
        // O_NONBLOCK as rmmod: fail at once rather than wait for references to drop.
        say(std::string("delete_module(\"") + o.module + "\"" + (force ? ", O_TRUNC" : "") + ")");
        errno = 0;
        const long r = syscall(SYS_delete_module, o.module.c_str(), O_NONBLOCK | (force ? O_TRUNC : 0));
        o.syscall_return = r == 0 ? 0 : -int64_t(errno);
        o.result = r == 0 ? "unloaded" : "refused_by_kernel";
        if (r != 0) o.notes.push_back(std::string("the kernel refused: ") + strerror(errno));
        o.notes.push_back("no check at free_module: through /proc/kcore nothing stops the kernel there "
                          "('kmod attach HOST:PORT' guards the free)");
    }
    s.refresh_kcore();
    o.after = "gone";
    for (const auto& m : s.system().modules())
        if (m.name == o.module) o.after = m.state;
    render(args, o, out);
}

void unload(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    if (args.positional.size() != 1)
        throw Error("usage: kmod unload MODULE [--force] [--trigger CMD] [--timeout S] [--no-scan] [--json]");
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    const bool force = args.flag("--force"), scan = !args.flag("--no-scan"), quiet = args.flag("--quiet");
    auto say = [&](const std::string& line) {
        if (!quiet) progress(dbg, line);
    };
    if (s.kcore()) return unload_kcore(s, target, args, force, scan, say, out);
    LiveTarget& live = live_kernel(s, "kmod unload");
    const auto timeout_s = parse_number(args.value("--timeout", "120"));
    if (!timeout_s || *timeout_s == 0) throw Error("--timeout wants seconds");

    Outcome o;
    o.module = s.module(args.positional[0]).name;
    const uint64_t module_addr = s.module(o.module).addr;
    LinuxUnloadPath path(s.system().kernel());
    std::set<std::string>& quiesced = quiesced_modules(s);

    LiveTarget::WriteGrant grant(live);
    OwnBreakpoints bps(live);
    bps.insert(path.entry());
    bps.insert(path.free());
    std::optional<HostCommand> trigger;
    if (!args.value("--trigger").empty()) {
        trigger.emplace(args.value("--trigger"));
        o.trigger = &*trigger;
        say("running the trigger: " + trigger->command());
    }
    say("waiting for the unload of " + o.module + " (breakpoints on delete_module and free_module, up to " +
        std::to_string(*timeout_s) + " s)");

    const auto deadline = Clock::now() + std::chrono::seconds(*timeout_s);
    auto analyse = [&](const std::string& where) {
        live.refresh_tasks();
        Check c;
        c.where = where;
        c.task = task_on(live);
        say("analysing " + o.module + " at the " + where + " (" + c.task + ")");
        c.report = inuse_report(s, target, o.module, scan, say);
        return c;
    };

    bool entered = false, done = false;
    uint64_t ret_addr = 0, entry_sp = 0;
    while (!done) {
        if (Clock::now() >= deadline) {
            o.notes.push_back("no unload of " + o.module + " finished within " + std::to_string(*timeout_s) + " s");
            break;
        }
        if (!entered && trigger && trigger->finished()) {
            o.notes.push_back("the trigger ended without the kernel unloading " + o.module);
            break;
        }
        const auto slice = std::min<Clock::duration>(deadline - Clock::now(), std::chrono::milliseconds(500));
        const LiveTarget::Run run = live.run(std::chrono::duration_cast<std::chrono::milliseconds>(slice) + std::chrono::milliseconds(1));
        if (run == LiveTarget::Run::gone) throw Error("the live kernel went away during the unload");
        if (run == LiveTarget::Run::timed_out) continue;
        const size_t vcpu = live.stop_vcpu();
        const RegisterSet regs = live.vcpus()[vcpu].regs;
        const uint64_t pc = regs.get(Reg::rip);

        if (pc == path.entry() && !entered) {
            auto call = path.call_at_entry(regs, [&](uint64_t a, size_t n) {
                std::string b = live.read_as_cpu(vcpu, a, n);
                return b.substr(0, b.find('\0'));
            });
            if (call.name != o.module) {
                live.step_over(vcpu);
                continue;
            }
            o.forced_by_caller = call.forced();
            Check c = analyse("entry");
            const bool ours = quiesced.count(o.module) > 0;
            c.step = decide_unload_entry(c.report, force, ours, user_task(s.system()));
            say(std::string("delete_module(\"") + o.module + "\") by " + c.task + ": " + to_string(c.report.verdict) +
                (c.step.proceed ? ", goes on" : ", vetoed"));
            const bool proceed = c.step.proceed;
            o.checks.push_back(std::move(c));
            if (!proceed) {
                live.set_registers(vcpu, path.return_now(regs, -kEbusy));
                o.result = "vetoed";
                o.syscall_return = -kEbusy;
                done = true;
                continue;
            }
            if (ours) {
                // The kernel unloads only a LIVE module: the quiesce's state goes.
                const int32_t v = path.live_state();
                if (!live.live_memory().write(path.state_address(module_addr), &v, sizeof v))
                    throw Error("could not restore " + o.module + "'s state to LIVE");
                quiesced.erase(o.module);
            }
            entered = true;
            entry_sp = regs.get(Reg::rsp);
            ret_addr = live.live_memory().read_u64(entry_sp).value_or(0);
            if (ret_addr) bps.insert(ret_addr);
            live.step_over(vcpu);
        } else if (pc == path.free() && entered && LinuxUnloadPath::module_at_free(regs) == module_addr) {
            Check c = analyse("free");
            c.step = decide_free(c.report);
            const bool proceed = c.step.proceed;
            say(std::string("free_module(") + o.module + "): " + (proceed ? "nothing reaches into it, freed" : "guarded, its memory kept"));
            o.checks.push_back(std::move(c));
            if (proceed) {
                o.result = "unloaded";
                live.step_over(vcpu);
            } else {
                live.set_registers(vcpu, path.return_now(regs, 0));
                o.result = "guarded";
                o.notes.push_back("guarded: " + o.module + "'s memory stays mapped and its state GOING (a leak, not a crash); "
                                  "the kernel considers it unloaded, so it cannot be loaded again until reboot");
            }
        } else if (entered && pc == ret_addr && regs.get(Reg::rsp) == entry_sp + 8) {
            // The unloading task's return (its own stack: it may have moved
            // to another CPU meanwhile).
            o.syscall_return = static_cast<int64_t>(regs.get(Reg::rax));
            if (o.result == "not_unloaded" && *o.syscall_return != 0) o.result = "refused_by_kernel";
            done = true;
        } else if (bps.has(pc)) {
            live.step_over(vcpu);  // another task's syscall, or LLDB's own breakpoint
        }
    }
    bps.remove(path.entry());
    bps.remove(path.free());
    bps.remove(ret_addr);

    // Let the trigger finish (the guest's rmmod prints its result), then stop.
    while (trigger && !trigger->finished() && Clock::now() < deadline) {
        if (live.run(std::chrono::milliseconds(300)) == LiveTarget::Run::gone)
            throw Error("the live kernel went away after the unload");
    }
    live.refresh_tasks();
    LinuxSystem& sys = s.system();
    o.after = "gone";
    for (const auto& m : sys.modules())
        if (m.name == o.module) o.after = m.state;
    if (o.result == "unloaded" && o.after != "gone") o.notes.push_back("the module is still listed after the unload");
    resync_lldb(target, live);
    render(args, o, out);
}

}  // namespace

void register_unload(lldb::SBCommand& kmod) {
    add_command(kmod, {"unload", "Guarded unload of a module on a live kernel: vetoed or guarded at the kernel's unload path. WRITES to the target.",
                       "kmod unload MODULE [--force] [--trigger CMD] [--timeout S] [--no-scan] [--json] [--quiet]\n"
                       "  --trigger CMD  a host command that makes the guest unload it (e.g. \"scripts/lab guest 'rmmod M'\");\n"
                       "                 without it, waits for the unload from inside the guest\n"
                       "  --force        skip the kernel's refusals (refcount) and leave to the module's exit\n"
                       "                 function what it exists to undo; still vetoed when no exit could make it\n"
                       "                 safe (a user task inside the module, an open file, a dependent module)\n"
                       "  --timeout S    give up after S seconds (default 120)\n"
                       "  --no-scan      no raw memory reference scan in the checks (they cannot be SAFE then)\n"
                       "Breakpoints on __x64_sys_delete_module and free_module. At the entry the full in-use\n"
                       "analysis runs: anything but SAFE (without --force) makes the syscall return -EBUSY\n"
                       "there (rmmod: \"Device or resource busy\"), the module stays LIVE. At free_module, after\n"
                       "the exit function ran, anything still reaching into the module (a timer it forgot, a\n"
                       "kthread it did not stop) keeps the module's memory instead of freeing it: a leak, not a\n"
                       "crash. One of the three commands that write to the target (with quiesce, unquiesce):\n"
                       "registers and memory of the unloading task, the breakpoints. The kernel is stopped after it.\n"
                       "After 'kmod attach --kcore' (this machine's kernel): the same check, then delete_module(2)\n"
                       "is called from here (O_NONBLOCK, and O_TRUNC with --force) only if the check lets it go on;\n"
                       "no guard at the free is possible there.",
                       {"--force", "--no-scan", "--json", "--quiet"}, {"--trigger", "--timeout"}, unload});
}

}  // namespace kq
