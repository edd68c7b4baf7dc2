#!/usr/bin/python3
"""drgn's side of bench/unwind: unwinds every task of a dump with drgn.

    /usr/bin/python3 bench/unwind_drgn.py VMLINUX DUMP [KO...] [--repeat N] [--names]

Loads the dump (drgn 0.0.22 reads only paging ELF dumps) with vmlinux and the
module .ko files (drgn needs them to unwind through module frames), then
walks prog.stack_trace(task) for every task (for_each_task, plus each CPU's
idle task) N times (default 1); with --names, one more pass also reads every
frame's name. Prints one JSON object, with fields named as kq_unwind_bench's.
"""
import json
import resource
import sys
import time

import drgn
from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.list import list_for_each_entry
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.sched import idle_task


def main():
    args = sys.argv[1:]
    repeat, names = 1, "--names" in args
    if names:
        args.remove("--names")
    if "--repeat" in args:
        i = args.index("--repeat")
        repeat = max(1, int(args[i + 1]))
        del args[i:i + 2]
    if len(args) < 2:
        sys.exit(__doc__)
    vmlinux, dump, kos = args[0], args[1], args[2:]

    t0 = time.perf_counter()
    prog = drgn.Program()
    prog.set_core_dump(dump)
    prog.load_debug_info([vmlinux, *kos])
    tasks = [idle_task(prog, cpu) for cpu in for_each_online_cpu(prog)]
    tasks += list(for_each_task(prog))
    # Module memory (Linux 6.1: core_layout), to count the tasks with a module frame.
    modules = [(m.core_layout.base.value_(), m.core_layout.size.value_())
               for m in list_for_each_entry("struct module", prog["modules"].address_of_(), "list")]
    t1 = time.perf_counter()

    def walk(with_names):
        frames = failed = in_module = chars = 0
        s, c = time.perf_counter(), time.process_time()
        for task in tasks:
            try:
                trace = prog.stack_trace(task)
            except (drgn.FaultError, ValueError):
                failed += 1
                continue
            frames += len(trace)
            if with_names:
                chars += sum(len(f.name or "") for f in trace)
                in_module += any(b <= f.pc < b + n for f in trace for b, n in modules)
        return {"s": time.perf_counter() - s, "cpu": time.process_time() - c, "frames": frames, "failed": failed,
                "in_module": in_module}

    passes = [walk(False) for _ in range(repeat)]
    named = walk(True) if names else None
    cold = passes[0]
    print(json.dumps({
        "tasks": len(tasks) - cold["failed"],
        "failed": cold["failed"],
        "frames": cold["frames"],
        "in_module": named["in_module"] if named else None,
        "open_s": t1 - t0,
        "walk_cold_s": cold["s"],
        "walk_cold_cpu_s": cold["cpu"],
        "walk_best_s": min(p["s"] for p in passes),
        "walk_names_s": named["s"] if named else None,
        "repeat": repeat,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))


if __name__ == "__main__":
    main()
