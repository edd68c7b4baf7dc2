"""lldb-16 -b runs with the plugin, and the checks the integration tests report."""
import json
import os
import subprocess
import sys

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN = os.environ.get("KQ_PLUGIN", os.path.join(SOURCE, "build", "libkquiesce.so"))


def run_lldb(commands, target=None, timeout=600):
    """Runs lldb-16 -b with the plugin, `target create TARGET` (unless None),
    then `commands`. Returns (outputs, full text): outputs[i] is what
    commands[i] printed (None if it did not run)."""
    pre = [f"plugin load {PLUGIN}"] + ([f"target create {target}"] if target else [])
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
