"""Real Debian kernel dumps (KASLR and nokaslr, three formats) opened in LLDB:
tasks as threads, kq_sleep's module frame, module symbols, stock LLDB commands."""
import re

from kqlab import ENV, check, core_command, dump, finish, json_of, lldb


def tasks_of(path):
    """TIDs the guest listed from /proc right before the dump, and its CPU count."""
    tids, cpus = set(), 0
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] == "cpus":
                cpus = int(parts[1])
            elif len(parts) >= 2 and parts[0].isdigit():
                tids.add(int(parts[1]))
    return tids, cpus


IDLE_BASE = 1 << 30  # thread id of CPU n's idle task: IDLE_BASE + n (pid 0 is "any thread" to gdb-remote)

threads_json = {}
for name, tasks_file in [("kaslr.elf", "tasks.txt"), ("kaslr-paging.elf", "tasks.txt"),
                         ("kaslr.kdump", "tasks.txt"), ("nokaslr.elf", "nokaslr-tasks.txt")]:
    path = dump(name)
    cmds = [core_command(path, "--json"), "thread list", "kmod threads --module kq_sleep --json",
            "expr init_task.comm", "kmod threads --json", "thread backtrace all",
            "kmod threads --module kq_nested --json", "kmod threads --module kq_sleep --scan --json"]
    out, text = lldb(cmds)
    core = json_of(out[0], f"{name}: kmod core")
    check(core["release"] == ENV["KQ_RELEASE"], f"{name}: release {core['release']}")
    check(("nokaslr" in name) == (core["kaslr_offset"] == "0"), f"{name}: KASLR offset {core['kaslr_offset']}")

    # What is compared: the set of thread ids LLDB lists equals the TIDs the
    # guest's /proc listed at the moment of the dump, plus one idle task per CPU.
    guest_tids, cpus = tasks_of(f"{ENV['KQ_DUMPS']}/{tasks_file}")
    lldb_tids = {int(t, 0) for t in re.findall(r"^\*?\s*thread #\d+: tid = (0x[0-9a-f]+|\d+)", out[1] or "", re.M)}
    want = guest_tids | {IDLE_BASE + c for c in range(cpus)}
    check(len(guest_tids) > 20 and cpus >= 1, f"{name}: guest listed {len(guest_tids)} tasks on {cpus} CPUs")
    check(lldb_tids == want, f"{name}: LLDB threads {len(lldb_tids)} == guest tasks + idle {len(want)}"
          + ("" if lldb_tids == want else f" (only in LLDB: {sorted(lldb_tids - want)[:10]}, "
                                          f"only in guest: {sorted(want - lldb_tids)[:10]})"))

    sleepers = json_of(out[2], f"{name}: kmod threads --module kq_sleep")
    ks = [t for t in sleepers["threads"] if t["comm"] == "kq_sleep"]
    check(len(ks) == 1, f"{name}: kq_sleep thread found")
    frame = None
    if ks:
        mframes = [f for f in ks[0]["frames"] if f["module"] == "kq_sleep"]
        check(bool(mframes) and all(f["in_module"] for f in mframes), f"{name}: kq_sleep has a frame in kq_sleep")
        frame = mframes[0] if mframes else None
        check(frame is not None and frame["symbol"].startswith("kq_sleep"),
              f"{name}: module frame names {frame and frame['symbol']}")
    check("swapper/0" in (out[3] or ""), f"{name}: expr init_task.comm -> {(out[3] or '').strip()}")
    threads_json[name] = out[4]
    every = json_of(out[4], f"{name}: kmod threads")
    check(every["incomplete_stacks"] == 0 and all(t["complete"] for t in every["threads"]),
          f"{name}: the project's unwinder reaches the base of all {len(every['threads'])} stacks")
    check(len(every["threads"]) == len(want), f"{name}: kmod threads lists every task")

    # kq_nested: module -> kernel (sort) -> module callback -> sleep. A module
    # frame lies below kernel frames, which checking the pc alone would miss.
    nested = json_of(out[6], f"{name}: kmod threads --module kq_nested")
    kn = [t for t in nested["threads"] if t["comm"] == "kq_nested"]
    mods = [f["module"] for f in kn[0]["frames"]] if kn else []
    first = mods.index("kq_nested") if "kq_nested" in mods else -1
    check(first > 0 and "vmlinux" in mods[:first] and "vmlinux" in mods[first + 1:]
          and "kq_nested" in mods[mods.index("vmlinux", first + 1):],
          f"{name}: kq_nested frames below kernel frames: {mods}")
    check(bool(kn) and all(f["method"] in ("initial", "orc") for f in kn[0]["frames"]),
          f"{name}: kq_nested unwound by ORC (module ORC from the .ko)")

    # --scan: validated return addresses into the module outside the frames.
    scanned = json_of(out[7], f"{name}: kmod threads --module kq_sleep --scan")
    words = [w for t in scanned["threads"] for w in t.get("scan", [])]
    check(all("scan" in t for t in scanned["threads"])
          and all(w["module"] == "kq_sleep" and w["where"] in ("live", "stale") for w in words),
          f"{name}: --scan lists {len(words)} advisory return addresses, all into kq_sleep")
    # LLDB's own unwinder over every task: it must finish (split functions
    # such as rcu_tasks_one_gp used to hang it) and start every stack.
    bt = out[5] or ""
    check(len(re.findall(r"^\s*\*?\s*frame #0:", bt, re.M)) == len(lldb_tids),
          f"{name}: thread backtrace all gives a stack for each of the {len(lldb_tids)} threads")
    check("rcu_tasks_one_gp" in bt, f"{name}: a backtrace passes through a split function (rcu_tasks_one_gp)")

    if frame:
        look, _ = lldb([core_command(path), f"image lookup -a {frame['pc']}"])
        check(look[1] is not None and "kq_sleep.ko" in look[1] and frame["symbol"] in look[1],
              f"{name}: image lookup -a {frame['pc']} names kq_sleep.ko`{frame['symbol']}")

# Without `target create`: kmod core --vmlinux makes the target itself, and
# answers as with one.
path = dump("kaslr.elf")
out, text = lldb([core_command(path, f"--vmlinux {ENV['KQ_VMLINUX']}"), "target list", "kmod threads --json",
                  "expr init_task.comm"], target=False)
check(out[0] is not None and out[0].startswith("Opened"), f"no target, --vmlinux: kmod core opens the dump: {out[0]}")
check(out[1] is not None and "state=stopped" in out[1], "no target, --vmlinux: a target was made and stopped")
check(out[2] is not None and out[2] == threads_json["kaslr.elf"],
      "no target, --vmlinux: the same kmod threads --json")
check("swapper/0" in (out[3] or ""), "no target, --vmlinux: expr init_task.comm")

# The three formats of one moment give the same answer.
a = threads_json["kaslr.elf"]
check(a is not None and a == threads_json["kaslr-paging.elf"], "ELF and paging ELF: identical kmod threads --json")
check(a is not None and a == threads_json["kaslr.kdump"], "ELF and kdump-compressed: identical kmod threads --json")
finish()
