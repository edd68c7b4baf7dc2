"""Shared helpers of the integration tests on the lab's dumps: where they are,
and lldb-16 -b runs with the lab's vmlinux (lldb_run.py runs lldb itself)."""
import os
import re
import subprocess

from lldb_run import PLUGIN, check, fail, finish, json_of, run_lldb  # noqa: F401 (the tests' helpers)

SOURCE = os.environ.get("KQ_SOURCE", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def lab_env():
    """The lab's variables (scripts/lab env), taking those already exported first."""
    out = subprocess.run([os.path.join(SOURCE, "scripts", "lab"), "env"], check=True,
                         capture_output=True, text=True).stdout
    env = {}
    for line in out.splitlines():
        m = re.match(r"^(?:export\s+)?(KQ_\w+)=(.*)$", line.strip())
        if m:
            env[m.group(1)] = m.group(2).strip("'\"")
    for k in list(env):
        env[k] = os.environ.get(k, env[k])
    return env


ENV = lab_env()


def dump(name):
    path = os.path.join(ENV["KQ_DUMPS"], name)
    if not os.path.exists(path):
        fail(f"missing dump {path}: run scripts/lab prepare")
    return path


def core_command(dump_path, extra=""):
    return (f"kmod core {dump_path} --modules-dir {ENV['KQ_MODULES_BUILD']} "
            f"--modules-dir {ENV['KQ_DEBUG_MODULES']} {extra}").strip()


def lldb(commands, vmlinux=None, timeout=600, target=True):
    """Runs lldb-16 -b with the plugin, vmlinux as target (none if not
    `target`), then `commands`.
    Returns (outputs, full text): outputs[i] is what commands[i] printed."""
    return run_lldb(commands, (vmlinux or ENV["KQ_VMLINUX"]) if target else None, timeout)
