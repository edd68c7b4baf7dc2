"""kmod attach on a running lab guest (QEMU TCG, KASLR on, GDB stub), driven
through LLDB's Python API: every kernel task is a thread; LLDB's bt of the
kq_sleep task runs through the module; kmod inuse kq_idle is SAFE with full
coverage (the memory reference scan reads the guest's RAM through the stub);
kmod inuse kq_mutex gives the evidence kinds, memory references included, and
kmod refs kq_sleep the same words as a dump of the same guest taken at the same
moment; the read-only part sends the stub no write packet; a breakpoint by name on a function GCC split in
two (__do_sys_delete_module, whose stop LLDB 16 lost with vmlinux itself) stops
LLDB when the guest runs rmmod, with the task list re-read; continuing lets
rmmod finish; an interrupt stops the kernel again with the module gone; detach
lets the guest run on.

Exits 77 (skipped) when QEMU or LLDB's Python module is missing or the guest
does not boot. One boot, about two minutes."""
import os
import re
import shutil
import tempfile
import threading
import time

from livelab import ENV, Lab, Lldb, check, finish, json_of, lldb
from kqlab import core_command, lldb as lldb_batch

SCENARIOS = ["kq_sleep", "kq_mutex", "kq_idle"]
LAB = Lab("live")


def lab(*args, timeout=120, check_rc=True):
    return LAB.run(*args, timeout=timeout, check_rc=check_rc)


def lab_tasks():
    """{tid: comm} of the guest's tasks (scripts/lab tasks forks nothing in it)."""
    out = lab("tasks").stdout.splitlines()
    return {int(l.split()[1]): l.split(None, 2)[2] for l in out[1:] if len(l.split()) >= 3}


def evidence_kinds(report):
    return sorted({(e["kind"], e["severity"]) for e in report["evidence"]})


def ref_words(refs):
    """{(physical address, value): (container, severity)} of kmod refs --json."""
    return {(r["phys"], r["value"]): (r["container"], r["severity"]) for r in refs["refs"]}


def main():
    work = tempfile.mkdtemp(prefix="kq-live-")
    log = os.path.join(work, "proxy.log")
    try:
        port = LAB.boot(*SCENARIOS)
        t0 = time.monotonic()
        run_checks(port, log, work)
        print(f"live checks took {time.monotonic() - t0:.0f} s")
    finally:
        LAB.stop()
        shutil.rmtree(work, ignore_errors=True)
    finish()


def run_checks(port, log, work):
    before = lab_tasks()
    d = Lldb()
    ok, out = d.attach(1)
    check(not ok and "no GDB stub answers at 127.0.0.1:1" in out, f"attach to a closed port fails in one line: {out.strip()}")

    ok, out = d.attach(port, log)
    if not check(ok, f"kmod attach: {out.strip()[-300:]}"):
        return
    info = json_of(out, "kmod attach")
    check(int(info["kaslr_offset"], 16) != 0, f"KASLR offset found: {info['kaslr_offset']}")
    check(d.process.GetState() == lldb.eStateStopped, "LLDB's process is stopped after attach")

    # Every task of the guest is a thread, with its name. Tasks may come and
    # go between `scripts/lab tasks` and the attach: those present before and
    # after (read once LLDB detached) must all be there.
    threads = {t.GetThreadID(): t.GetName() for t in d.process}
    check(len(threads) == info["tasks"], f"{len(threads)} LLDB threads for {info['tasks']} tasks")
    idle = [tid for tid, name in threads.items() if tid >= 1 << 30]
    check(len(idle) == info["cpus"], f"one idle task per CPU: {len(idle)}")

    # LLDB's own unwinder through the module, on the kq_sleep kthread.
    sleeper = next((t for t in d.process if t.GetName() == "kq_sleep"), None)
    if check(sleeper is not None, "a thread named kq_sleep"):
        frames = [(f.GetFunctionName() or "", f.GetModule().GetFileSpec().GetFilename() or "") for f in sleeper]
        check(("kq_sleep_wait", "kq_sleep.ko") in frames, f"bt of kq_sleep has kq_sleep.ko`kq_sleep_wait: {frames}")
        d.process.SetSelectedThread(sleeper)
        ok, out = d.run("bt")
        check(ok and "kq_sleep.ko`kq_sleep_wait" in out, "`bt` prints the module frame")
    ok, out = d.run("kmod threads --module kq_sleep --json")
    check(ok and '"kq_sleep"' in out, "kmod threads --module kq_sleep works live")

    ok, out = d.run("kmod list --json")
    live_modules = sorted(m["name"] for m in json_of(out, "kmod list")) if ok else []
    check(set(SCENARIOS) <= set(live_modules), f"kmod list has the scenarios: {live_modules}")
    ok, out = d.run("kmod inuse kq_mutex --json --quiet")
    live_report = json_of(out, "live kmod inuse") if ok else None
    check(live_report is not None and live_report["verdict"] == "UNSAFE",
          f"kmod inuse kq_mutex live: {live_report and live_report['verdict']}")
    # The memory reference scan reads all of the guest's RAM through the stub.
    ok, out = d.run("kmod inuse kq_idle --json --quiet")
    idle = json_of(out, "live kmod inuse kq_idle") if ok else None
    if check(idle is not None, "kmod inuse kq_idle live gives a report"):
        gaps = [f"{c['provider']}: {c['gap']}" for c in idle["coverage"] if not c["complete"]]
        check(idle["verdict"] == "SAFE" and not gaps, f"kmod inuse kq_idle live: {idle['verdict']}, gaps {gaps}")
        scan = [c for c in idle["coverage"] if c["provider"] == "memory reference scan"]
        check(len(scan) == 1 and "MiB of physical memory" in scan[0]["covered"], f"live memory scan: {scan}")
    ok, out = d.run("kmod refs kq_sleep --json --quiet")
    live_refs = json_of(out, "live kmod refs") if ok else None
    check(live_refs is not None and live_refs["bytes_unreadable"] == 0 and live_refs["bytes_scanned"] > 200 << 20,
          f"kmod refs kq_sleep live scanned the RAM: {live_refs and (live_refs['bytes_scanned'], live_refs['bytes_unreadable'])}")

    # The same moment as a dump (the guest is stopped): the same evidence.
    dump = os.path.join(work, "live.elf")
    lab("dump", dump, timeout=300)
    outs, text = lldb_batch([core_command(dump), "kmod list --json", "kmod inuse kq_mutex --json --quiet",
                             "kmod refs kq_sleep --json --quiet"])
    dump_modules = sorted(m["name"] for m in json_of(outs[1], "dump kmod list"))
    check(dump_modules == live_modules, "kmod list: the same modules live and in the dump")
    dump_report = json_of(outs[2], "dump kmod inuse")
    if live_report and dump_report:
        live_kinds, dump_kinds = evidence_kinds(live_report), evidence_kinds(dump_report)
        check(live_kinds == dump_kinds, f"kmod inuse kq_mutex: evidence kinds live {live_kinds} == dump {dump_kinds}")
        for want in ("thread_frame", "lock", "memory_ref"):
            check(any(k == want for k, _ in live_kinds), f"live evidence has {want}")
    dump_refs = json_of(outs[3], "dump kmod refs")
    if live_refs and dump_refs:
        live_words, dump_words = ref_words(live_refs), ref_words(dump_refs)
        check(live_words == dump_words and live_words,
              f"kmod refs kq_sleep: the same {len(dump_words)} words live and in the dump "
              f"(only live: {sorted(set(live_words.items()) - set(dump_words.items()))[:3]}, "
              f"only in the dump: {sorted(set(dump_words.items()) - set(live_words.items()))[:3]})")
    os.unlink(dump)

    # Nothing so far may have written to the guest.
    with open(log) as f:
        writes = [l.strip() for l in f if re.match(r"^> [MXZGP]", l)]
    check(not writes, f"read-only commands sent no write packet to the stub: {writes[:3]}")

    # A breakpoint by name stops LLDB when the guest runs rmmod.
    ok, out = d.run("breakpoint set -n __do_sys_delete_module")
    check(ok and "address = 0x" in out, f"breakpoint by name resolved: {out.strip()}")
    guest = {}

    def rmmod():
        p = lab("guest", "--timeout", "90", "rmmod kq_idle; echo rmmod=$?", timeout=120, check_rc=False)
        guest["out"] = p.stdout
    check(d.resume(), "continue: the kernel runs")
    trigger = threading.Thread(target=rmmod, daemon=True)
    trigger.start()
    stopped = d.wait_stop(90)
    check(stopped, "the breakpoint stopped LLDB")
    if stopped:
        hit = [t for t in d.process if t.GetStopReason() == lldb.eStopReasonBreakpoint]
        check(len(hit) == 1 and hit[0].GetName() == "rmmod", f"stopped in rmmod: {[t.GetName() for t in hit]}")
        if hit:
            f0 = hit[0].GetFrameAtIndex(0).GetFunctionName()
            check(f0 == "__do_sys_delete_module", f"frame 0 is __do_sys_delete_module: {f0}")
        now = {t.GetThreadID() for t in d.process}
        check(any(t.GetName() == "rmmod" for t in d.process) and now != set(threads),
              f"the task list was re-read at the stop ({len(now)} threads)")
        d.run("breakpoint delete -f")
        check(d.resume(), "continue from the breakpoint")
        trigger.join(100)
        check("rmmod=0" in guest.get("out", ""), f"the guest's rmmod finished: {guest.get('out', '').strip()}")
        d.dbg.SetAsync(True)
        d.process.Stop()
        check(d.wait_stop(30), "process interrupt stops the kernel")
        ok, out = d.run("kmod list --json")
        names = [m["name"] for m in json_of(out, "kmod list after rmmod")] if ok else []
        check(ok and "kq_idle" not in names and "kq_sleep" in names, "kmod list after the stop: kq_idle is gone")
        kos = [m.GetFileSpec().GetFilename() for m in d.dbg.GetSelectedTarget().modules]
        check("kq_idle.ko" not in kos and "kq_sleep.ko" in kos, "LLDB's modules follow: kq_idle.ko removed")

    ok, out = d.run("process detach")
    check(ok, f"detach: {out.strip()}")
    alive = lab("guest", "--timeout", "30", "echo alive", timeout=60, check_rc=False)
    check(alive.stdout.strip() == "alive", "the guest runs on after detach")

    after = lab_tasks()
    missing = {tid: comm for tid, comm in before.items() if after.get(tid) == comm and threads.get(tid) != comm}
    check(not missing, f"every task present before and after is a thread ({len(before)} tasks): missing {missing}")
    d.close()


if __name__ == "__main__":
    main()
