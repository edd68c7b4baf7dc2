"""kmod inuse on the lab's dumps: every scenario module gives the evidence it
was built to create, with the right symbol and severity, and no blocking
evidence that lies in another module; the verdict follows from evidence and
coverage. An expectation that depends on a kernel subsystem provider is
checked when that provider reports complete coverage; while it reports a gap,
the verdict must not be SAFE (and is UNKNOWN unless something blocking was
found). kaslr.elf holds the standard scenarios, deferred.elf those that stall a
CPU or RCU (scripts/lab prepare's deferred guest)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kqlab import check, core_command, dump, finish, json_of, lldb

# module -> (provider or None, evidence kind, severity, symbol prefix); and the
# verdict when every provider covers everything.
EXPECT = {
    "kq_idle": ([], "SAFE"),
    "kq_spin": ([(None, ("thread_pc", "thread_frame"), "blocking", "kq_spin_loop")], "UNSAFE"),
    "kq_sleep": ([(None, ("thread_frame",), "blocking", "kq_sleep_wait"),
                  ("wait queues", ("wait_queue",), "blocking", "kq_sleep_wq"),
                  (None, ("stack_word",), "advisory", "kq_sleep_wait")], "UNSAFE"),
    "kq_nested": ([(None, ("thread_frame",), "blocking", "kq_nested_cmp")], "UNSAFE"),
    "kq_mutex": ([(None, ("thread_frame",), "blocking", "kq_mutex_hold"),
                  (None, ("thread_frame",), "blocking", "kq_mutex_wait"),
                  ("locks", ("lock",), "blocking", "kq_mutex_lock")], "UNSAFE"),
    "kq_rwsem": ([(None, ("thread_frame",), "blocking", "kq_rwsem_hold"),
                  (None, ("thread_frame",), "blocking", "kq_rwsem_wait"),
                  ("locks", ("lock",), "blocking", "kq_rwsem_lock")], "UNSAFE"),
    "kq_timer": ([("timers", ("timer",), "blocking", "kq_timer_")], "UNSAFE"),
    "kq_hrtimer": ([("hrtimers", ("hrtimer",), "blocking", "kq_hrtimer_")], "UNSAFE"),
    # The delayed work's timer lives in the module: found as soon as timers are read.
    "kq_work": ([("timers", ("timer", "work"), "blocking", "kq_work_item"),
                 ("workqueues", ("work",), "blocking", "kq_work_")], "UNSAFE"),
    "kq_workrun": ([(None, ("thread_frame",), "blocking", "kq_workrun_fn"),
                    ("workqueues", ("work",), "blocking", "kq_workrun_")], "UNSAFE"),
    "kq_notifier": ([("notifiers", ("notifier",), "blocking", "kq_notifier_")], "UNSAFE"),
    # An open file whose file_operations are the module's: a forced unload
    # leaves the file pointing at freed code, so this is UNSAFE, not BUSY.
    "kq_chardev": ([(None, ("refcount",), "refused-by-kernel", ""),
                    ("open files", ("open_file",), "blocking", "kq_chardev_fops")], "UNSAFE"),
    "kq_dep_a": ([(None, ("holder",), "refused-by-kernel", ""),
                  (None, ("refcount",), "refused-by-kernel", "")], "BUSY"),
    "kq_dep_b": ([], "SAFE"),
}

# deferred.elf: kq_tasklet's and kq_all's kthreads each keep a tasklet
# scheduled by halting a CPU with bottom halves off; kq_rcu's and kq_all's
# sleep inside an RCU read-side critical section after call_rcu().
IRQ = [("irq handlers", ("irq_handler",), "blocking", "kq_irq_handler")]
TASKLET = [("tasklets", ("tasklet",), "blocking", "kq_tasklet_fn"),
           (None, ("thread_pc", "thread_frame"), "blocking", "kq_tasklet_hold")]
RCU = [("rcu callbacks", ("rcu_callback",), "blocking", "kq_rcu_free_cb"),
       (None, ("thread_frame",), "blocking", "kq_rcu_read"),
       ("wait queues", ("wait_queue",), "blocking", "kq_rcu_wq")]
DEFERRED_EXPECT = {
    "kq_idle": ([], "SAFE"),
    "kq_irq": (IRQ, "UNSAFE"),
    "kq_tasklet": (TASKLET, "UNSAFE"),
    "kq_rcu": (RCU, "UNSAFE"),
    # Every condition at once, from the same sources (the chardev's device is /dev/kq_all).
    "kq_all": ([e for m in ("kq_sleep", "kq_mutex", "kq_rwsem", "kq_timer", "kq_hrtimer", "kq_work",
                            "kq_workrun", "kq_notifier", "kq_chardev")
                for e in EXPECT[m][0] if e[1] != ("stack_word",)] + IRQ + TASKLET + RCU, "UNSAFE"),
}


def check_inuse(dump_name, expect):
    """kmod inuse --json for every module of `expect` on one dump."""
    path = dump(dump_name)
    cmds = [core_command(path), "kmod list --json"] + [f"kmod inuse {m} --json --quiet" for m in expect]
    out, _ = lldb(cmds)
    modules = json_of(out[1], f"{dump_name}: kmod list") or []
    ranges = {m["name"]: [(int(r["start"], 16), int(r["start"], 16) + r["size"]) for r in m["ranges"]]
              for m in modules}
    for i, (mod, (expected, full_verdict)) in enumerate(expect.items(), start=2):
        what = f"{dump_name} {mod}"
        r = json_of(out[i], f"{what}: kmod inuse")
        if r is None:
            continue
        check(r.get("schema") == "kquiesce.inuse/1" and r["module"] == mod, f"{what}: schema and module")
        covered = {c["provider"]: c["complete"] for c in r["coverage"]}
        gaps = [c["provider"] for c in r["coverage"] if not c["complete"]]
        for provider, kinds, severity, symbol in expected:
            if provider is not None and not covered.get(provider, False):
                continue
            hits = [e for e in r["evidence"] if e["kind"] in kinds and e["severity"] == severity
                    and e["symbol"].startswith(symbol)]
            check(bool(hits), f"{what}: {'/'.join(kinds)} {severity} {symbol or ''}".rstrip()
                  + ("" if hits else f" in {[(e['kind'], e['symbol']) for e in r['evidence']]}"))
        if not expected:
            check(not [e for e in r["evidence"] if e["severity"] != "advisory"],
                  f"{what}: no blocking or refused evidence: {[(e['kind'], e['symbol']) for e in r['evidence']]}")
        # Blocking evidence is an address in the module (the same symbols are
        # in kq_all and the single scenarios: only the address tells them apart).
        elsewhere = [(e["kind"], e["symbol"], e["subject"]) for e in r["evidence"] if e["severity"] == "blocking"
                     and not any(lo <= int(e["address"], 16) < hi for lo, hi in ranges.get(mod, []))]
        check(not elsewhere, f"{what}: blocking evidence lies in {mod}" + (f": not {elsewhere}" if elsewhere else ""))
        blocking = any(e["severity"] == "blocking" for e in r["evidence"])
        if not gaps:
            check(r["verdict"] == full_verdict, f"{what}: verdict {r['verdict']} (expected {full_verdict})")
        else:
            want = "UNSAFE" if blocking else "UNKNOWN"
            check(r["verdict"] == want, f"{what}: verdict {r['verdict']} with gaps in {gaps} (expected {want})")


check_inuse("kaslr.elf", EXPECT)
check_inuse("deferred.elf", DEFERRED_EXPECT)
path = dump("kaslr.elf")

# The raw reference scan: the reboot chain links kq_notifier's notifier block
# from kernel data (the block before it in the chain, or the chain's head).
out, _ = lldb([core_command(path), "kmod refs kq_notifier --json --quiet"])
refs = json_of(out[1], "kmod refs kq_notifier")
if refs:
    kernel_to_nb = [r for r in refs["refs"] if r["container"] == "kernel" and r["points_to"].endswith("kq_notifier_nb")]
    check(bool(kernel_to_nb), f"kmod refs kq_notifier: kernel data points at kq_notifier_nb: "
          f"{[(r['where'], r['points_to']) for r in kernel_to_nb]}")
    check(refs["bytes_scanned"] > 200 << 20 and refs["gb_per_s"] > 0,
          f"kmod refs: scanned {refs['bytes_scanned'] >> 20} MiB at {refs['gb_per_s']:.2f} GB/s")
    check(all(not r["points_to"].startswith("kq_notifier`") or r["container"] != "module"
              or not r["where"].startswith("kq_notifier`") for r in refs["refs"]),
          "kmod refs: the module's own memory is not reported")

# kmod whatis: a module's data symbol, a kernel variable, a task_struct.
out, _ = lldb([core_command(path), "p/x &kq_notifier_nb", "p/x &init_task"])
addrs = [((o or "").split("= ")[-1].strip()) for o in out[1:3]]
if all(a.startswith("0x") for a in addrs):
    out, _ = lldb([core_command(path)] + [f"kmod whatis {a} --json" for a in addrs])
    w = [json_of(o, "kmod whatis") for o in out[1:3]]
    check(w[0] and w[0]["kind"] == "module" and w[0]["owner"] == "kq_notifier" and "kq_notifier_nb" in w[0]["detail"],
          f"kmod whatis names kq_notifier_nb in its module: {w[0]}")
    check(w[1] and w[1]["kind"] == "kernel" and "init_task" in w[1]["detail"] and ".data" in w[1]["detail"],
          f"kmod whatis names init_task in vmlinux's .data: {w[1]}")
else:
    check(False, f"addresses of kq_notifier_nb and init_task from LLDB: {addrs}")

# A module that is not loaded: one error line naming the loaded ones.
_, text = lldb([core_command(path), "kmod inuse kq_nothing"])
errors = [l for l in text.splitlines() if l.startswith("error: kmod inuse")]
check(len(errors) == 1 and "not loaded" in errors[0] and "kq_sleep" in errors[0],
      f"unknown module: one error line listing loaded modules: {errors}")
finish()
