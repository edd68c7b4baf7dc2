"""kmod on FreeBSD amd64 dumps: the fixture kernel (corefiles/freebsd, built
with kquiesce) in both dump forms, a module in use (busy) and an unused one
(idle), opened through `kmod core` as a real kernel.debug and vmcore are:
the OS found from the image, every planted use of kq_fbsd reported with its
kind, symbol and thread, busy UNSAFE and idle SAFE. Needs no lab."""
import os
import re

from lldb_run import check, fail, finish, json_of, run_lldb

FIXTURE = os.environ.get("KQ_FBSD_FIXTURE_DIR", "")
KERNEL = os.path.join(FIXTURE, "kernel.debug")

# kmod inuse kq_fbsd on busy/: (kind, symbol, thread names); a frame's
# offset in its function depends on the compiler and is left out.
BUSY_BLOCKING = sorted([
    ("thread_frame", "kq_fbsd_sleeper", ("kq_fbsd_sleep",)),
    ("thread_frame", "kq_fbsd_worker", ("kq_fbsd_work",)),
    ("thread_frame", "kq_fbsd_locker", ("kq_fbsd_lock",)),
    ("wait_queue", "kq_fbsd_chan", ("kq_fbsd_sleep",)),
    ("lock", "kq_fbsd_sc", ("kq_fbsd_lock", "kq_fbsd_work")),  # the mutex: owner and waiter
    ("lock", "kq_fbsd_sc+0x20", ("kq_fbsd_sleep",)),           # the sx lock: its owner
    ("timer", "kq_fbsd_tick", ()),
    ("work", "kq_fbsd_task", ()),
    ("notifier", "kq_fbsd_shutdown", ()),
])
# kmod threads --module kq_fbsd on busy/: thread name -> its function in the module.
BUSY_THREADS = {"kq_fbsd_sleep": "kq_fbsd_sleeper", "kq_fbsd_work": "kq_fbsd_worker",
                "kq_fbsd_lock": "kq_fbsd_locker"}


def planted(scenario):
    """fixture.txt of a scenario: its threads (tid -> name), kq_fbsd.ko's
    .text and the module's mutex."""
    threads, text, mutex = {}, None, None
    with open(os.path.join(FIXTURE, scenario, "fixture.txt")) as f:
        for line in f:
            w = line.split()
            if w[:1] == ["thread"]:
                threads[int(w[1])] = w[3]
            elif w[:3] == ["section", "kq_fbsd.ko", ".text"]:
                text = int(w[3], 16)
            elif w[:1] == ["mutex"]:
                mutex = w[1]
    return threads, text, mutex


def bare(symbol):
    """A function's name without the offset in it."""
    return re.sub(r"\+0x[0-9a-f]+$", "", symbol or "")


def one(scenario, form):
    dump = os.path.join(FIXTURE, scenario, "vmcore." + form)
    what = f"{scenario}/{form}"
    threads, text, mutex = planted(scenario)
    # The minidump opens without a target (kmod core makes one from the
    # kernel image), the full dump in a target created from kernel.debug.
    core = f"kmod core {dump} --modules-dir {FIXTURE} --json"
    if form == "minidump":
        core = f"kmod core {dump} --vmlinux {KERNEL} --modules-dir {FIXTURE} --json"
    cmds = [core, "kmod list --json", "kmod threads --module kq_fbsd --json",
            "kmod inuse kq_fbsd --json --quiet", f"kmod whatis {mutex} --json", "kmod refs kq_fbsd --json --quiet",
            "kmod dmesg"]
    out, text_all = run_lldb(cmds, target=None if form == "minidump" else KERNEL, timeout=300)

    c = json_of(out[0], f"{what}: kmod core")
    check(c.get("os") == "FreeBSD", f"{what}: kmod core finds FreeBSD from the image (os {c.get('os')})")
    check(c["tasks"] == len(threads), f"{what}: every thread is a task ({c['tasks']} of {len(threads)})")
    check(c["modules"] == 1 and c["ko_loaded"] == 1, f"{what}: kq_fbsd.ko loaded into LLDB ({c})")
    check(not c["warnings"], f"{what}: no warnings ({c['warnings']})")

    mods = json_of(out[1], f"{what}: kmod list")
    check([m["name"] for m in mods] == ["kq_fbsd"], f"{what}: kmod list lists kq_fbsd ({[m['name'] for m in mods]})")
    if mods:
        m = mods[0]
        starts = {r["what"]: int(r["start"], 16) for r in m["ranges"]}
        check(starts.get("text") == text, f"{what}: kq_fbsd's text at the planted address ({m['ranges']})")
        check((m["ko"] or "").endswith("kq_fbsd.ko") and m["state"] == "Live",
              f"{what}: kq_fbsd Live with its .ko ({m['state']}, {m['ko']})")

    th = json_of(out[2], f"{what}: kmod threads")
    check(th["total_threads"] == len(threads), f"{what}: kmod threads sees every thread ({th['total_threads']})")
    got = {}
    for t in th["threads"]:
        fns = [bare(f["symbol"]) for f in t["frames"] if f["in_module"]]
        got[t["comm"]] = fns
        check(t["complete"], f"{what}: {t['comm']}'s stack reaches its base")
        check(threads.get(t["tid"]) == t["comm"], f"{what}: tid {t['tid']} is {t['comm']}")
    want = BUSY_THREADS if scenario == "busy" else {}
    check(sorted(got) == sorted(want), f"{what}: threads in kq_fbsd: {sorted(got)}")
    for name, fn in want.items():
        check(fn in got.get(name, []), f"{what}: {name} has a frame in {fn} ({got.get(name)})")

    r = json_of(out[3], f"{what}: kmod inuse")
    blocking = sorted((e["kind"], bare(e["symbol"]) if e["kind"] == "thread_frame" else e["symbol"],
                       tuple(sorted(threads.get(t, str(t)) for t in e["tasks"])))
                      for e in r["evidence"] if e["severity"] == "blocking")
    others = [(e["kind"], e["severity"], e["subject"]) for e in r["evidence"] if e["severity"] != "blocking"]
    gaps = [(c["provider"], c["gap"]) for c in r["coverage"] if not c["complete"]]
    providers = [c["provider"] for c in r["coverage"]]
    check("memory reference scan" in providers, f"{what}: the memory reference scan ran ({providers})")
    check(not gaps, f"{what}: every provider covered everything ({gaps})")
    check(not any(s == "refused_by_kernel" for _, s, _ in others), f"{what}: nothing refused by the kernel ({others})")
    if scenario == "busy":
        check(r["verdict"] == "UNSAFE", f"{what}: verdict UNSAFE ({r['verdict']})")
        check(blocking == BUSY_BLOCKING, f"{what}: every planted use, with kind, symbol and thread"
              + ("" if blocking == BUSY_BLOCKING else f":\n  got  {blocking}\n  want {BUSY_BLOCKING}"))
    else:
        check(r["verdict"] == "SAFE", f"{what}: verdict SAFE ({r['verdict']}: {r['reasons']})")
        check(not blocking, f"{what}: no blocking evidence ({blocking})")

    w = json_of(out[4], f"{what}: kmod whatis")
    check(w["kind"] == "module" and w["owner"] == "kq_fbsd" and "kq_fbsd_sc" in w["detail"],
          f"{what}: kmod whatis names the module's mutex ({w})")
    refs = json_of(out[5], f"{what}: kmod refs")
    check(refs["refs"] and all(x["container"] == "stack" or x["severity"] == "advisory" for x in refs["refs"]),
          f"{what}: kmod refs: a plain scan, its hits advisory but on stacks ({len(refs['refs'])} refs)")
    check("needs a Linux kernel" in text_all, f"{what}: kmod dmesg says it needs a Linux kernel")


def main():
    if not FIXTURE or not os.path.exists(os.path.join(FIXTURE, "busy", "fixture.txt")):
        fail(f"no FreeBSD fixture in '{FIXTURE}' (KQ_FBSD_FIXTURE_DIR; the build's kq_fbsd_fixture target)")
    for scenario in ("busy", "idle"):
        for form in ("minidump", "elf"):
            one(scenario, form)
    # A Linux vmlinux for a FreeBSD dump (where the lab has one): one clear line.
    vmlinux = os.environ.get("KQ_VMLINUX", "")
    if os.path.exists(vmlinux):
        dump = os.path.join(FIXTURE, "busy", "vmcore.minidump")
        out, text = run_lldb([f"kmod core {dump} --vmlinux {vmlinux}"], timeout=300)
        errors = [line for line in text.splitlines() if line.startswith("error:")]
        check(len(errors) == 1 and "not a Linux dump" in errors[0], f"a vmlinux for a FreeBSD dump: {errors}")
    finish()


if __name__ == "__main__":
    main()
