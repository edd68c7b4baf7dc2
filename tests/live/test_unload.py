"""The guarded unload and the quiesce on a running lab guest (QEMU TCG, KASLR
on, GDB stub), through kmod attach:
- kmod unload kq_idle: SAFE at the entry, freed; the guest's rmmod exits 0;
- kmod unload kq_mutex (no --force): vetoed at the entry; the guest's rmmod
  fails with EBUSY; the module stays Live, its kthreads still there;
- kmod quiesce kq_chardev while the guest closes the file after 5 s: drained;
  a new open fails meanwhile; then kmod unload unloads it;
- kmod unload kq_leaky_timer --force with rmmod -f: the exit runs, the guard
  catches the pending timer at free_module and keeps the memory; the guest is
  alive 30 s later (the timer kept firing into kept text);
- and without kquiesce, rmmod -f kq_leaky_timer on a fresh guest crashes it:
  the guard is what kept the first guest alive.
Exits 77 (skipped) when QEMU or LLDB's Python module is missing or the guest
does not boot. Two boots, about three minutes."""
import re
import threading
import time

from livelab import Lab, Lldb, check, finish, json_of, lldb

SCENARIOS = ["kq_idle", "kq_mutex", "kq_chardev", "kq_leaky_timer"]
CRASH = re.compile(r"BUG: unable to handle page fault|Kernel panic|general protection fault")


def unload(d, lab, module, rmmod, extra=""):
    trigger = lab.guest_command(f"{rmmod}; echo rc=$?")
    ok, out = d.run(f'kmod unload {module} {extra} --json --quiet --timeout 200 --trigger "{trigger}"')
    if not check(ok, f"kmod unload {module}: {out.strip()[-400:]}"):
        return None
    r = json_of(out, f"kmod unload {module}")
    check(d.process.GetState() == lldb.eStateStopped, f"{module}: LLDB sees the kernel stopped after kmod unload")
    return r


def guest_modules(lab):
    return {l.split()[0]: l.split()[4] for l in lab.guest("cat /proc/modules").splitlines() if len(l.split()) > 4}


def guarded_run(lab):
    port = lab.boot(*SCENARIOS)
    d = Lldb()
    ok, out = d.attach(port)
    if not check(ok, f"kmod attach: {out.strip()[-300:]}"):
        return

    # kq_idle: nothing uses it; unloaded.
    r = unload(d, lab, "kq_idle", "rmmod kq_idle")
    if r:
        entry = r["checks"][0]
        check(r["result"] == "unloaded" and r["after"] == "gone" and r["syscall_return"] == 0,
              f"kq_idle unloaded: {r['result']}, after {r['after']}, returned {r['syscall_return']}: {entry['reasons']}")
        check(entry["report"]["verdict"] == "SAFE" and entry["proceed"], f"kq_idle SAFE at the entry: {entry['reasons']}")
        check([c["at"] for c in r["checks"]] == ["entry", "free"], "kq_idle: checked at the entry and at the free")
        check("rc=0" in r["trigger"]["output"], f"the guest's rmmod kq_idle exits 0: {r['trigger']['output'].strip()}")

    # kq_mutex: its kthreads hold and wait on its mutex; vetoed.
    r = unload(d, lab, "kq_mutex", "rmmod kq_mutex")
    if r:
        check(r["result"] == "vetoed" and r["syscall_return"] == -16 and r["after"] == "Live",
              f"kq_mutex vetoed: {r['result']}, returned {r['syscall_return']}, now {r['after']}")
        check(r["checks"][0]["report"]["verdict"] == "UNSAFE" and len(r["checks"]) == 1, "kq_mutex UNSAFE at the entry, no free")
        out = r["trigger"]["output"]
        check("Device or resource busy" in out and "rc=1" in out, f"the guest's rmmod failed with EBUSY: {out.strip()}")
    ok, out = d.run("kmod threads --module kq_mutex --json")
    check(ok and "kq_mutex_owner" in out and "kq_mutex_waiter" in out, "kq_mutex's kthreads still run through it")

    # kq_chardev: quiesced while the guest closes its file after 5 s.
    closer = threading.Thread(target=lambda: lab.guest(
        'sleep 5; kill $(ps | awk "/sleep 100000/ && !/awk/ {print \\$1}"); echo closed'), daemon=True)
    closer.start()
    ok, out = d.run("kmod quiesce kq_chardev --timeout 20 --json --quiet")
    q = json_of(out, "kmod quiesce") if ok else {}
    check(ok and q.get("drained") and 4 <= q.get("seconds", 0) < 20,
          f"kq_chardev drained in {q.get('seconds')} s: {q.get('still')}: {out.strip()[-300:]}")
    closer.join(60)
    r = unload(d, lab, "kq_chardev", "cat /dev/kq_chardev; echo cat=$?; rmmod kq_chardev")
    if r:
        out = r["trigger"]["output"]
        check("cat=1" in out, f"a quiesced module takes no new user (open fails): {out.strip()}")
        check(r["result"] == "unloaded" and r["after"] == "gone" and "rc=0" in out,
              f"kq_chardev unloaded after the quiesce: {r['result']}: {r['checks'][0]['reasons']}")

    # kq_leaky_timer: a forced unload whose exit forgets its timer; guarded.
    r = unload(d, lab, "kq_leaky_timer", "rmmod -f kq_leaky_timer", "--force")
    if r:
        check(r["result"] == "guarded" and r["after"] == "Going" and r["syscall_return"] == 0,
              f"kq_leaky_timer guarded: {r['result']}, now {r['after']}, returned {r['syscall_return']}")
        free = r["checks"][-1] if r["checks"] else {}
        kinds = {e["kind"] for e in free.get("report", {}).get("evidence", []) if e["severity"] == "blocking"}
        check(free.get("at") == "free" and "timer" in kinds, f"the guard saw the pending timer at the free: {kinds}")
        check("rc=0" in r["trigger"]["output"], f"the guest's rmmod -f returned: {r['trigger']['output'].strip()}")
    ok, out = d.run("process detach")
    check(ok, f"detach: {out.strip()}")
    d.close()
    time.sleep(30)
    check(lab.guest("echo alive", timeout=30).strip() == "alive", "the guest is alive 30 s after the guarded unload")
    mods = guest_modules(lab)
    check(mods.get("kq_leaky_timer") == "Unloading" and "kq_idle" not in mods and mods.get("kq_mutex") == "Live",
          f"the guest's /proc/modules: {mods}")
    check(not CRASH.search(lab.console()), "no oops on the guest's console")


def unguarded_run(lab):
    lab.boot("kq_leaky_timer")
    lab.guest("rmmod -f kq_leaky_timer; echo rc=$?", timeout=30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not CRASH.search(lab.console()):
        time.sleep(1)
    m = CRASH.search(lab.console())
    check(m is not None, "without kquiesce the same forced unload crashes the guest" + (f" ({m.group(0)})" if m else ""))


def main():
    for name, body in (("unload", guarded_run), ("unguarded", unguarded_run)):
        lab = Lab(name)
        try:
            t0 = time.monotonic()
            body(lab)
            print(f"{name}: {time.monotonic() - t0:.0f} s")
        finally:
            lab.stop()
    finish()


if __name__ == "__main__":
    main()
