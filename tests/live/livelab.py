"""What the live tests share: a lab guest of their own (scripts/lab, QEMU TCG
with a GDB stub), LLDB's Python module, one debugger whose commands run
synchronously. A test exits 77 (skipped) when QEMU or LLDB's Python module is
missing or the guest does not boot."""
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from kqlab import ENV, PLUGIN, SOURCE, check, finish, json_of  # noqa: E402,F401

SKIP = 77


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


class Lab:
    """A guest of this test only: booted, stopped, its logs removed."""

    def __init__(self, name):
        self.name = os.environ.get("KQ_LIVE_LAB", f"{name}-{os.getpid()}")
        self.env = dict(os.environ, KQ_LAB=self.name)

    def run(self, *args, timeout=120, check_rc=True):
        p = subprocess.run([os.path.join(SOURCE, "scripts", "lab"), *args], env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if check_rc and p.returncode != 0:
            raise RuntimeError(f"scripts/lab {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()[-500:]}")
        return p

    def boot(self, *scenarios):
        """The GDB stub's port; skips the test if the guest does not boot."""
        if not shutil.which("qemu-system-x86_64"):
            skip("qemu-system-x86_64 is not installed")
        boot = self.run("boot", *scenarios, timeout=400, check_rc=False)
        port = re.search(r"^gdb=(\d+)$", boot.stdout, re.M)
        if boot.returncode != 0 or not port:
            skip(f"the lab guest did not boot: {boot.stderr.strip()[-400:]}")
        return int(port.group(1))

    def guest(self, command, timeout=90):
        """The guest's output of a shell command ("" if it did not answer)."""
        p = self.run("guest", "--timeout", str(timeout), command, timeout=timeout + 30, check_rc=False)
        return p.stdout

    def guest_command(self, command, timeout=90):
        """The host command that runs `command` in this guest (for --trigger)."""
        return (f"KQ_LAB={self.name} {os.path.join(SOURCE, 'scripts', 'lab')} guest --timeout {timeout} "
                f"'{command}'")

    def console(self):
        cache = os.environ.get("KQ_CACHE", os.path.expanduser("~/.cache/kquiesce"))
        try:
            with open(os.path.join(cache, "labs", self.name, "console.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        self.run("stop", check_rc=False)
        if "KQ_LIVE_LAB" not in os.environ:  # a lab of this run only: its logs go too
            cache = os.environ.get("KQ_CACHE", os.path.expanduser("~/.cache/kquiesce"))
            shutil.rmtree(os.path.join(cache, "labs", self.name), ignore_errors=True)


def import_lldb():
    try:
        path = subprocess.run(["lldb-16", "-P"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        skip(f"lldb-16 -P failed: {e}")
    sys.path.insert(0, path)
    try:
        import lldb  # noqa: F401
    except ImportError as e:
        skip(f"LLDB's Python module does not load (run with /usr/bin/python3): {e}")
    return lldb


lldb = import_lldb()


class Lldb:
    """One debugger, commands run synchronously, resumes waited for here."""

    def __init__(self):
        self.dbg = lldb.SBDebugger.Create()
        self.dbg.SetAsync(False)
        self.ci = self.dbg.GetCommandInterpreter()
        self.listener = self.dbg.GetListener()

    def run(self, command):
        r = lldb.SBCommandReturnObject()
        self.ci.HandleCommand(command, r)
        return r.Succeeded(), (r.GetOutput() or "") + (r.GetError() or "")

    def attach(self, port, log=None):
        """kmod attach with the lab's vmlinux and module trees: (ok, output)."""
        self.run(f"plugin load {PLUGIN}")
        cmd = (f"kmod attach 127.0.0.1:{port} --vmlinux {ENV['KQ_VMLINUX']} --modules-dir {ENV['KQ_MODULES_BUILD']} "
               f"--modules-dir {ENV['KQ_DEBUG_MODULES']} --json")
        return self.run(cmd + (f" --log {log}" if log else ""))

    @property
    def process(self):
        return self.dbg.GetSelectedTarget().GetProcess()

    def wait_state(self, state, seconds):
        deadline = time.monotonic() + seconds
        ev = lldb.SBEvent()
        while time.monotonic() < deadline:
            self.listener.WaitForEvent(1, ev)
            if self.process.GetState() == state:
                return True
        return self.process.GetState() == state

    def resume(self):
        """continue, returning once LLDB sees the kernel running."""
        self.dbg.SetAsync(True)
        self.process.Continue()
        return self.wait_state(lldb.eStateRunning, 20)

    def wait_stop(self, seconds):
        stopped = self.wait_state(lldb.eStateStopped, seconds)
        self.dbg.SetAsync(False)
        return stopped

    def close(self):
        lldb.SBDebugger.Destroy(self.dbg)
