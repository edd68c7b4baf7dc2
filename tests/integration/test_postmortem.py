"""kmod postmortem and kmod dmesg on the lab's crash dumps (scripts/lab
prepare: crash-SCENARIO.elf, each taken at the panic its scenario caused).

An unload crash names the vanished module, the function+offset of the
module's symbol the scenario used, the path (timer / work / thread /
callback) and the cleanup the module's exit missed; the NULL dereference of a
loaded module is no unload crash and names the faulting function; without the
.ko the module is still named, the function is not; a dump without a crash
says so. kmod dmesg reads the log the guest printed on its console."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kqlab import ENV, PLUGIN, check, core_command, dump, fail, finish

MODULES = os.path.join(ENV["KQ_DUMPS"], "modules")

# scenario -> (function the crash enters or returns into, path kind, missing cleanup)
UNLOAD = {
    "kq_leaky_timer": ("kq_leaky_timer_fn", "timer", "del_timer_sync"),
    "kq_leaky_work": ("kq_leaky_work_fn", "work", "cancel_delayed_work_sync"),
    "kq_leaky_thread": ("kq_leaky_thread_fn", "thread", "kthread_stop"),
    "kq_stale_notifier": ("kq_stale_notifier_call", "callback", "unregister_reboot_notifier"),
}


def msleep_return_offset(ko):
    """Offset in kq_leaky_thread_fn just after its call to msleep: where the
    kthread returns into the freed module."""
    text = subprocess.run(["objdump", "-dr", "--no-show-raw-insn", ko], check=True, capture_output=True, text=True).stdout
    fn = re.search(r"<kq_leaky_thread_fn>:\n(.*?)\n\n", text, re.S)
    if not fn:
        fail(f"no kq_leaky_thread_fn in {ko}")
    for m in re.finditer(r"^\s*([0-9a-f]+): R_X86_64_PLT32\s+msleep", fn.group(1), re.M):
        return int(m.group(1), 16) + 4  # the rel32 is the call's last 4 bytes
    fail(f"kq_leaky_thread_fn in {ko} does not call msleep")


def session(steps):
    """One lldb-16 run with a target per dump: steps are (dump path or None,
    [commands]). Returns the output of every command, in order."""
    args = ["lldb-16", "--no-lldbinit", "-b", "-o", f"plugin load {PLUGIN}"]
    commands = []
    for path, cmds in steps:
        if path:
            commands += [f"target create {ENV['KQ_VMLINUX']}", core_command(path)]
        commands += cmds
    for c in commands:
        args += ["-o", c]
    p = subprocess.run(args, capture_output=True, text=True, timeout=900)
    # lldb -b echoes "(lldb) COMMAND" before each command's output, in order.
    outputs, cur, k = [], None, 0
    for line in p.stdout.splitlines():
        if k < len(commands) and line.strip() == f"(lldb) {commands[k]}".strip():
            cur = []
            outputs.append((commands[k], cur))
            k += 1
        elif cur is not None:
            cur.append(line)
    if k < len(commands):
        print(p.stdout[-3000:] + p.stderr[-3000:])
        fail(f"lldb stopped after {k} of {len(commands)} commands")
    return [(c, "\n".join(lines)) for c, lines in outputs]


def main():
    crash = {m: dump(f"crash-{m}.elf") for m in list(UNLOAD) + ["kq_null_deref"]}
    pm = f"kmod postmortem --json --modules-dir {MODULES}"
    # With the .ko files the dumps were made with; then kq_leaky_timer's
    # without them (the loaded module's directory has none), its log, and a
    # dump that holds no crash.
    steps = [(path, [pm]) for path in crash.values()]
    steps.append((crash["kq_leaky_timer"], ["kmod postmortem --json", "kmod dmesg --json", "kmod dmesg --tail 5"]))
    steps.append((dump("kaslr.elf"), ["kmod postmortem --json"]))
    # The same crash saved as kdump saves it (kdump-compressed, flattened).
    steps.append((dump("crash-kq_leaky_timer.kdump"), [pm]))
    out = session(steps)
    # Outputs in order: per step, "target create", "kmod core", then its commands.
    by_step, i = [], 0
    for path, cmds in steps:
        i += 2
        by_step.append(out[i:i + len(cmds)])
        i += len(cmds)

    def js(text, what):
        for line in text.splitlines():
            if line.startswith("{"):
                return json.loads(line)
        fail(f"{what}: no JSON in\n{text}")

    for n, (m, path) in enumerate(crash.items()):
        r = js(by_step[n][0][1], f"{m}: kmod postmortem")
        a, p, c = r["attribution"], r["path"], r["context"]
        check(r["panicked"] and c["pt_regs"] is not None, f"{m}: a panic, the oops registers found ({c['pt_regs']})")
        if m == "kq_null_deref":
            check(r["kind"] == "loaded_module" and not r["unload_crash"],
                  f"{m}: not an unload crash ({r['kind']}): {r['summary']}")
            check(a["module"] == m and a["function"] == "kq_null_deref_set",
                  f"{m}: faulting function in the loaded module: {a['module']} {a['symbol']}")
            check(c["fault_address"] == "0x10", f"{m}: faulting address 0x10 ({c['fault_address']})")
            check(r["path"] is None, f"{m}: no unload path")
            continue
        fn, kind, cleanup = UNLOAD[m]
        offset = msleep_return_offset(os.path.join(MODULES, m + ".ko")) if kind == "thread" else 0
        check(r["kind"] == "unload" and r["unload_crash"], f"{m}: an unload crash ({r['kind']}): {r['summary']}")
        check(a["module"] == m, f"{m}: vanished module {a['module']} ({', '.join(a['module_sources'])})")
        check("last_unloaded_module" in a["module_sources"] and "ko match" in a["module_sources"],
              f"{m}: named by last_unloaded_module and by the .ko match")
        check(a["function"] == fn and a["offset"] == offset,
              f"{m}: function+offset {a['symbol']} (want {fn}+{offset:#x})")
        check(a["confidence"] == "high", f"{m}: confidence {a['confidence']}")
        ko = a["ko"] or {}
        check(ko.get("explained") == ko.get("total") and ko.get("exact", 0) >= 2 and ko.get("other_bases") == 0,
              f"{m}: the .ko at {ko.get('load_base')} explains {ko.get('explained')}/{ko.get('total')} stale "
              f"addresses, {ko.get('exact')} exactly")
        base = int(ko.get("load_base", "0x1"), 16)
        hole = a["hole"] or {}
        check(base % 4096 == 0 and int(hole.get("start", "0x0"), 16) <= base < int(hole.get("end", "0x0"), 16),
              f"{m}: load base page-aligned, in the hole {hole}")
        stale_pc = [s for s in a["stale"] if s["what"] == "fault pc"]
        check(stale_pc and int(stale_pc[0]["value"], 16) == int(c["fault_address"], 16) == int(c["pc"], 16),
              f"{m}: the stale pc is the faulting address of the log ({c['fault_address']})")
        check(p["kind"] == kind, f"{m}: path {p['kind']} (want {kind}), caller {p['caller']}")
        check(p["missing_cleanup"] == cleanup, f"{m}: missing cleanup {p['missing_cleanup']!r} (want {cleanup})")
        check(p["object"] is not None and p["function"] is not None and
              int(p["function"], 16) == int(c["pc"], 16) - offset,
              f"{m}: the {p['object_type']} at {p['object']} holds the stale function {p['function']}")
        if kind == "thread":
            check(c["task"]["comm"] == "kq_leaky_thread", f"{m}: the crashing task is the kthread ({c['task']['comm']})")
        if kind == "callback":
            check(p["chain"] == "reboot_notifier_list", f"{m}: the block is still on {p['chain']}")
        check(any(m in line for line in a["log_lines"]), f"{m}: the log's lines of the module ({len(a['log_lines'])})")

    # Without the .ko: named from the kernel's records, no function.
    r = js(by_step[len(crash)][0][1], "kq_leaky_timer without .ko")
    a = r["attribution"]
    check(r["unload_crash"] and a["module"] == "kq_leaky_timer" and a["function"] is None and a["ko"] is None,
          f"without the .ko: module {a['module']}, function {a['function']}")
    check("last_unloaded_module" in a["module_sources"] and "log" in a["module_sources"],
          f"without the .ko: named by {a['module_sources']}")
    check(any("no .ko of kq_leaky_timer" in n for n in r["notes"]), f"without the .ko: said so: {r['notes']}")
    check(r["path"]["kind"] == "timer" and r["path"]["missing_cleanup"] == "del_timer_sync",
          f"without the .ko: path {r['path']['kind']}, cleanup {r['path']['missing_cleanup']}")

    # kmod dmesg: the log the guest's console printed, then the panic.
    log = js(by_step[len(crash)][1][1], "kmod dmesg --json")
    texts = [rec["text"] for rec in log["log"]]
    check(log["records"] > 100 and log["lost"] == 0, f"dmesg: {log['records']} records, {log['lost']} lost")
    check(any(t.startswith("BUG: unable to handle page fault for address") for t in texts), "dmesg: the oops")
    check("end Kernel panic" in texts[-1], f"dmesg: ends with the panic ({texts[-1]!r})")
    lines = set()
    for rec in log["log"]:
        ts = rec["ts_nsec"]
        for t in rec["text"].split("\n"):
            lines.add(f"[{ts // 10**9:5d}.{ts % 10**9 // 1000:06d}] {t}")
    console = os.path.join(ENV["KQ_DUMPS"], "crash-kq_leaky_timer-console.log")
    printed = [l.rstrip("\r\n") for l in open(console, errors="replace") if re.match(r"^\[\s*\d+\.\d{6}\] ", l)]
    missing = [l for l in printed if l not in lines]
    check(len(printed) > 100 and not missing,
          f"dmesg: every one of the console's {len(printed)} kernel lines is in the dump's log"
          + (f" (missing: {missing[:3]})" if missing else ""))
    tail = by_step[len(crash)][2][1].splitlines()
    check(len(tail) == 5 and "end Kernel panic" in tail[-1], f"dmesg --tail 5: {len(tail)} lines")

    # A dump without a crash.
    r = js(by_step[len(crash) + 1][0][1], "kaslr.elf")
    check(r["kind"] == "no_crash" and not r["panicked"] and not r["unload_crash"],
          f"kaslr.elf: no crash ({r['kind']}): {r['summary']}")

    # kdump-compressed: the same attribution as from the ELF dump of that moment.
    elf = js(by_step[0][0][1], "kq_leaky_timer")
    r = js(by_step[len(crash) + 2][0][1], "crash-kq_leaky_timer.kdump")
    same = ("module", "function", "offset", "confidence")
    check(r["unload_crash"] and all(r["attribution"][k] == elf["attribution"][k] for k in same) and
          r["path"]["kind"] == "timer" and r["path"]["missing_cleanup"] == "del_timer_sync",
          f"kdump-compressed: {r['attribution']['symbol']} ({r['attribution']['confidence']}), path "
          f"{r['path']['kind']}, cleanup {r['path']['missing_cleanup']}, as from the ELF dump")
    finish()


if __name__ == "__main__":
    main()
