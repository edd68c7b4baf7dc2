"""Shared helpers of the integration tests: the lab's dumps and lldb-16 -b runs."""
import json
import os
import re
import subprocess
import sys

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
PLUGIN = os.environ.get("KQ_PLUGIN", os.path.join(SOURCE, "build", "libkquiesce.so"))


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
    vmlinux = vmlinux or ENV["KQ_VMLINUX"]
    pre = [f"plugin load {PLUGIN}"] + ([f"target create {vmlinux}"] if target else [])
    args = ["lldb-16", "--no-lldbinit", "-b"]
    for c in pre + commands:
        args += ["-o", c]
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    text = p.stdout + p.stderr
    # lldb -b echoes "(lldb) COMMAND" before each command's output.
    outputs = []
    lines = p.stdout.splitlines()
    for c in commands:
        marker = f"(lldb) {c}"
        try:
            start = lines.index(marker) + 1
        except ValueError:
            outputs.append(None)
            continue
        end = start
        while end < len(lines) and not lines[end].startswith("(lldb) "):
            end += 1
        outputs.append("\n".join(lines[start:end]))
    return outputs, text


def json_of(output, what):
    if output is None:
        fail(f"{what}: no output")
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{") or line.startswith("["):
            return json.loads(line)
    fail(f"{what}: no JSON in output:\n{output}")


_failures = []


def check(cond, message):
    print(("ok   " if cond else "FAIL ") + message)
    if not cond:
        _failures.append(message)
    return cond


def fail(message):
    print("FAIL " + message)
    sys.exit(1)


def finish():
    if _failures:
        print(f"{len(_failures)} check(s) failed")
        sys.exit(1)
    print("all checks passed")
