"""kmod attach --kcore FILE on the lab's paging dump (kaslr-paging.elf): it has
/proc/kcore's layout (PT_LOADs by kernel virtual address, extended program
header numbering, VMCOREINFO), and read as a kcore its CPU notes are not
used, so it shows on a real kernel, deterministically, what a running kernel
read without registers gives (tests/live/test_kcore.py reads a real
/proc/kcore, where what runs changes from run to run):

- every task of kmod core, the tasks on a CPU without frames (no_registers);
- the idle task of an idle CPU known to run no module code;
- any other running task named as a gap of kmod inuse's threads coverage,
  so the verdict is UNKNOWN, not SAFE."""
from kqlab import ENV, check, core_command, dump, finish, json_of, lldb


def main():
    path = dump("kaslr-paging.elf")
    out, text = lldb([core_command(path, "--json"), "kmod threads --json"])
    core = json_of(out[0], "kmod core")
    running = [t for t in json_of(out[1], "kmod threads")["threads"] if t["on_cpu"]]

    attach = (f"kmod attach --kcore {path} --modules-dir {ENV['KQ_MODULES_BUILD']} "
              f"--modules-dir {ENV['KQ_DEBUG_MODULES']} --json")
    out, text = lldb([attach, "kmod threads --json", "kmod inuse kq_idle --json --no-scan --quiet", "kmod quiesce kq_idle"])
    a = json_of(out[0], "kmod attach --kcore")
    check(a["kcore"] == path and a["release"] == core["release"] and a["kaslr_offset"] == core["kaslr_offset"],
          f"attach --kcore: {a['release']}, KASLR offset {a['kaslr_offset']} as kmod core's")
    check(a["tasks"] == core["tasks"] and a["modules"] == core["modules"],
          f"attach --kcore: {a['tasks']} tasks, {a['modules']} modules as kmod core's")

    th = json_of(out[1], "kmod threads")
    no_frames = [t for t in th["threads"]
                 if t["on_cpu"] and len(t["frames"]) == 1 and "no initial pc/sp" in t["frames"][0].get("stop", "")]
    check(th["no_registers"] == len(running) and th["incomplete_stacks"] == 0,
          f"threads: the {len(running)} tasks on a CPU have no registers ({th['no_registers']}), "
          f"every other stack complete ({th['incomplete_stacks']} incomplete)")
    check(len(no_frames) == len(running), f"threads: no frames for the running tasks {[t['comm'] for t in running]}")

    r = json_of(out[2], "kmod inuse kq_idle")
    threads = next(c for c in r["coverage"] if c["provider"] == "threads")
    busy = [t for t in running if t["pid"] != 0]
    idle = [t for t in running if t["pid"] == 0]
    check(all(f"({t['comm']}) on CPU {t['cpu']}" in (threads["gap"] or "") for t in busy) and busy,
          f"inuse: the running tasks {[t['comm'] for t in busy]} are a gap: {threads['gap']}")
    check(f"{len(idle)} running without registers but known" in threads["covered"],
          f"inuse: the {len(idle)} idle CPUs' idle tasks are known: {threads['covered']}")
    check(r["verdict"] == "UNKNOWN", f"inuse kq_idle: UNKNOWN while tasks ran unread ({r['verdict']})")
    check("/proc/kcore only reads one" in text, "kmod quiesce refuses what it cannot stop")
    finish()


if __name__ == "__main__":
    main()
