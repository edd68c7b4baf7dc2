"""kmod attach --kcore: kquiesce on the kernel it runs on, through its
/proc/kcore. The lab guest boots with the host's root file system at /host
(scripts/lab boot --host-root) and runs the host's LLDB with the plugin there
(tests/live/kcore_guest.py), so the kernel read is the guest's own, running:

- kmod attach --kcore: the guest's release, its KASLR offset, its tasks;
- kmod threads --module kq_sleep: the kthread asleep in kq_sleep_wait;
- kmod inuse kq_mutex: UNSAFE (its kthreads in the module), kq_idle: SAFE with
  every check complete (one CPU: the only running task is kquiesce's own);
- kmod unload kq_mutex: vetoed, delete_module(2) not called, still Live;
- kmod unload kq_idle: delete_module(2) called after the check, the module is
  gone from the guest's /proc/modules;
- kmod quiesce refuses (/proc/kcore cannot stop or write the kernel)."""
import json
import os
import re
import shlex
import subprocess

from livelab import ENV, PLUGIN, SOURCE, Lab, check, finish, skip

SCENARIOS = ["kq_idle", "kq_mutex", "kq_sleep"]


def guest_modules(lab):
    return {l.split()[0]: l.split()[4] for l in lab.guest("cat /proc/modules").splitlines() if len(l.split()) > 4}


def main():
    lldb_py = subprocess.run(["lldb-16", "-P"], capture_output=True, text=True).stdout.strip()
    cache = os.environ.get("KQ_CACHE", os.path.expanduser("~/.cache/kquiesce"))
    lab = Lab("kcore")
    lab.boot("--host-root", "--cpus", "1", "--mem", "2G", *SCENARIOS)
    try:
        if "/host/usr/bin" not in lab.guest("ls -d /host/usr/bin"):
            skip(f"the guest did not mount the host's root: {lab.console()[-600:]}")
        attach = (f"kmod attach --kcore --vmlinux {ENV['KQ_VMLINUX']} --modules-dir {ENV['KQ_MODULES_BUILD']} "
                  f"--modules-dir {ENV['KQ_DEBUG_MODULES']} --json")
        commands = [attach, "kmod threads --module kq_sleep --json", "kmod inuse kq_mutex --json --quiet",
                    "kmod inuse kq_idle --json --quiet", "kmod unload kq_mutex --json --quiet",
                    "kmod unload kq_idle --json --quiet", "kmod quiesce kq_sleep --timeout 5"]
        script = (f"cd /host && chroot /host /usr/bin/env -i HOME=/dev/shm KQ_CACHE={shlex.quote(cache)} "
                  f"PATH=/usr/bin:/bin /usr/bin/python3 {shlex.quote(os.path.join(SOURCE, 'tests/live/kcore_guest.py'))} "
                  f"{shlex.quote(lldb_py)} {shlex.quote(PLUGIN)} " + " ".join(shlex.quote(c) for c in commands) +
                  " 2>/dev/null")
        out = lab.guest(script, timeout=900)
        m = re.search(r"@@KCORE-RESULTS@@\n(.*)\n@@KCORE-END@@", out, re.S)
        if not m:
            check(False, f"the guest ran kquiesce: {out[-1500:]}")
            return finish()
        results = {c: (ok, text) for c, ok, text in json.loads(m.group(1))["results"]}

        def js(command):
            ok, text = results[command]
            check(ok, f"{command}: {text[-600:]}")
            try:
                return json.loads(text)
            except ValueError:
                check(False, f"{command}: not JSON: {text[-300:]}")
                return {}

        a = js(attach)
        check(a.get("os") == "Linux" and a.get("release") == ENV["KQ_RELEASE"],
              f"attach --kcore: Linux {ENV['KQ_RELEASE']}: {a.get('os')} {a.get('release')}")
        check(a.get("kaslr_offset", "0x0") != "0x0", f"attach --kcore: a KASLR offset from VMCOREINFO ({a.get('kaslr_offset')})")
        check(a.get("tasks", 0) >= 30 and a.get("modules", 0) >= len(SCENARIOS),
              f"attach --kcore: the guest's tasks and modules ({a.get('tasks')} tasks, {a.get('modules')} modules)")

        t = js("kmod threads --module kq_sleep --json")
        frames = [f.get("symbol", "") for th in t.get("threads", []) for f in th.get("frames", [])]
        check(any(s.startswith("kq_sleep_wait") for s in frames), f"threads: kq_sleep's kthread in kq_sleep_wait: {frames}")

        mutex = js("kmod inuse kq_mutex --json --quiet")
        kinds = {e["kind"] for e in mutex.get("evidence", [])}
        check(mutex.get("verdict") == "UNSAFE" and "thread_frame" in kinds,
              f"inuse kq_mutex: UNSAFE with thread frames: {mutex.get('verdict')} {sorted(kinds)}")

        idle = js("kmod inuse kq_idle --json --quiet")
        gaps = [c for c in idle.get("coverage", []) if not c.get("complete")]
        check(idle.get("verdict") == "SAFE" and not gaps,
              f"inuse kq_idle: SAFE, every check complete: {idle.get('verdict')} gaps {gaps} evidence {idle.get('evidence')}")
        threads = next((c for c in idle.get("coverage", []) if c["provider"] == "threads"), {})
        check("known to be elsewhere" in threads.get("covered", ""),
              f"inuse kq_idle: the running task without registers is kquiesce's own: {threads}")

        u = js("kmod unload kq_mutex --json --quiet")
        check(u.get("result") == "vetoed" and u.get("syscall_return") is None,
              f"unload kq_mutex: vetoed before delete_module: {u.get('result')} {u.get('notes')}")
        u = js("kmod unload kq_idle --json --quiet")
        check(u.get("result") == "unloaded" and u.get("syscall_return") == 0 and u.get("after") == "gone",
              f"unload kq_idle: delete_module returned 0, gone: {u.get('result')} {u.get('syscall_return')} "
              f"{u.get('after')} {u.get('notes')} {[c['reasons'] for c in u.get('checks', [])]}")

        ok, text = results["kmod quiesce kq_sleep --timeout 5"]
        check(not ok and "/proc/kcore" in text, f"quiesce refused through /proc/kcore: {text.strip()}")

        mods = guest_modules(lab)
        check("kq_idle" not in mods, f"the guest's /proc/modules lacks kq_idle: {sorted(mods)}")
        check(mods.get("kq_mutex") == "Live", f"kq_mutex still Live in the guest: {mods.get('kq_mutex')}")
        check("Oops" not in lab.console() and "BUG:" not in lab.console(), "the guest logged no oops")
    finally:
        lab.stop()
    finish()


if __name__ == "__main__":
    main()
