#!/usr/bin/env python3
"""Host side of the kquiesce lab's channels to a running QEMU guest.

Used by scripts/lab; not meant to be called directly.

  lab_io.py freeport
  lab_io.py qmp SOCK COMMAND [JSON-ARGS] [--timeout S]   prints the "return" as JSON
  lab_io.py hmp SOCK 'HMP COMMAND LINE'                 prints the monitor's text
  lab_io.py dump SOCK OUT elf|paging|kdump [--timeout S]
  lab_io.py ping SOCK [--timeout S]
  lab_io.py wait SOCK --timeout S [--pid PID] [--console LOG]
  lab_io.py tasks SOCK [--timeout S]
  lab_io.py sh SOCK --timeout S SCRIPT                   exits with the guest's status

SOCK is a unix socket; QMP and the agent accept one client at a time, so each
use holds an flock on SOCK.lock. The agent protocol is described in
corefiles/guest/init.
"""

import base64
import fcntl
import json
import os
import re
import secrets
import socket
import sys
import time

TASK_COMM_LEN = 16


def die(msg, code=1):
    print(f"lab_io: {msg}", file=sys.stderr)
    sys.exit(code)


def connect_unix(path, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    # sun_path holds 107 bytes: long cache paths connect relative to their dir.
    if len(path.encode()) > 100:
        cwd = os.getcwd()
        os.chdir(os.path.dirname(path))
        try:
            s.connect(os.path.basename(path))
        finally:
            os.chdir(cwd)
    else:
        s.connect(path)
    return s


class Lock:
    """flock on SOCK.lock with a deadline (one client per channel)."""

    def __init__(self, sock, timeout):
        self.f = open(sock + ".lock", "a")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    die(f"{sock} is busy (another client holds {sock}.lock)", 124)
                time.sleep(0.05)


# ---------------------------------------------------------------- QMP

class QMP:
    def __init__(self, sock, timeout):
        self.lock = Lock(sock, timeout)
        self.s = connect_unix(sock, timeout)
        self.f = self.s.makefile("rb")
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            die("QMP connection closed")
        return json.loads(line)

    def execute(self, cmd, args=None):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.s.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                die(f"QMP {cmd}: {r['error'].get('desc', r['error'])}")
            # anything else is an asynchronous event: skip it


def cmd_qmp(sock, cmd, args=None, timeout=30.0):
    q = QMP(sock, timeout)
    ret = q.execute(cmd, json.loads(args) if args else None)
    print(json.dumps(ret))


def cmd_hmp(sock, line, timeout=30.0):
    q = QMP(sock, timeout)
    sys.stdout.write(q.execute("human-monitor-command", {"command-line": line}))


def cmd_dump(sock, out, fmt, timeout=900.0):
    """dump-guest-memory, synchronously (detach=false): returns when OUT is complete."""
    args = {"protocol": "file:" + os.path.abspath(out), "paging": fmt == "paging"}
    if fmt == "kdump":
        args["format"] = "kdump-zlib"  # QEMU writes makedumpfile's flattened format
    elif fmt not in ("elf", "paging"):
        die(f"unknown dump format {fmt} (elf, paging, kdump)")
    q = QMP(sock, timeout)
    q.execute("dump-guest-memory", args)
    status = q.execute("query-dump").get("status")
    if status != "completed":
        die(f"dump-guest-memory ended with status {status}")


# ---------------------------------------------------------------- agent

def agent_request(sock, verb, args, timeout):
    """Send one request, return (rc, output bytes) or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    lock = Lock(sock, timeout)
    rid = secrets.token_hex(8)
    s = connect_unix(sock, timeout)
    try:
        # Leading newline: ends any partial line an interrupted client left.
        s.sendall(b"\n" + " ".join([rid, verb] + args).encode() + b"\n")
        begin = f"@@KQ-BEGIN {rid}@@\n".encode()
        end = re.compile(rb"\n@@KQ-END " + rid.encode() + rb" (-?\d+)@@\n")
        buf = b""
        started = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise TimeoutError
            if not chunk:
                raise ConnectionError("agent socket closed")
            buf += chunk
            if not started:
                i = buf.find(begin)
                if i < 0:
                    continue
                buf = buf[i + len(begin):]  # drop answers to earlier requests
                started = True
            m = end.search(buf)
            if m:
                return int(m.group(1)), buf[:m.start()]
    finally:
        s.close()
        del lock


def cmd_ping(sock, timeout=5.0):
    try:
        rc, _ = agent_request(sock, "ping", [], timeout)
    except (OSError, TimeoutError, ConnectionError):
        sys.exit(1)
    sys.exit(rc)


def cmd_wait(sock, timeout, pid=None, console=None):
    """Ping the agent until it answers; fail early if QEMU died or the guest panicked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid and not os.path.exists(f"/proc/{pid}"):
            die("QEMU exited during boot")
        if console and os.path.exists(console):
            with open(console, "rb") as f:
                text = f.read()
            if b"Kernel panic" in text:
                die(f"guest panicked during boot, see {console}")
        if os.path.exists(sock):
            try:
                rc, _ = agent_request(sock, "ping", [], 3.0)
                if rc == 0:
                    return
            except (OSError, TimeoutError, ConnectionError):
                pass
        time.sleep(0.5)
    die(f"guest agent did not answer within {timeout:.0f} s", 124)


def kernel_comm(comm):
    """/proc/PID/comm -> task_struct.comm as a dump holds it.

    /proc appends the workqueue to kworkers ("kworker/0:1-events", '+' while
    running a work item) and shows kthreads' full names; the task's own comm
    is the bare name, cut to TASK_COMM_LEN - 1 bytes.
    """
    if comm.startswith("kworker/"):
        comm = re.split(r"[-+]", comm, maxsplit=1)[0]
    return comm.encode()[: TASK_COMM_LEN - 1].decode(errors="replace")


def cmd_tasks(sock, timeout=30.0):
    try:
        rc, out = agent_request(sock, "tasks", [], timeout)
    except TimeoutError:
        die("tasks: timed out", 124)
    if rc != 0:
        die(f"tasks: agent status {rc}")
    cpus, tasks = None, []
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("cpus "):
            cpus = int(line.split()[1])
            continue
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            tasks.append((int(parts[0]), int(parts[1]), kernel_comm(parts[2])))
    if cpus is None or not tasks:
        die("tasks: malformed answer from the agent")
    print(f"cpus {cpus}")
    for pid, tid, comm in sorted(tasks):
        print(f"{pid} {tid} {comm}")


def cmd_sh(sock, timeout, script):
    payload = base64.b64encode(script.encode()).decode()
    try:
        # The guest kills the command at `timeout`; allow slack for the serial line.
        rc, out = agent_request(sock, "sh", [str(int(timeout)), payload], timeout + 15)
    except TimeoutError:
        die(f"guest command timed out after {timeout:.0f} s", 124)
    except (OSError, ConnectionError) as e:
        die(f"guest agent unreachable: {e}", 125)
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    sys.exit(rc if 0 <= rc <= 255 else 1)


def main(argv):
    opts, pos = {}, []
    it = iter(argv)
    for a in it:
        if a == "--":
            pos.extend(it)
        elif a.startswith("--"):
            opts[a[2:]] = next(it, None)
        else:
            pos.append(a)
    if not pos:
        die(__doc__)
    cmd, rest = pos[0], pos[1:]
    t = float(opts["timeout"]) if opts.get("timeout") else None
    if cmd == "freeport":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
    elif cmd == "qmp" and len(rest) in (2, 3):
        cmd_qmp(*rest, timeout=t or 30.0)
    elif cmd == "hmp" and len(rest) == 2:
        cmd_hmp(*rest, timeout=t or 30.0)
    elif cmd == "dump" and len(rest) == 3:
        cmd_dump(*rest, timeout=t or 900.0)
    elif cmd == "ping" and len(rest) == 1:
        cmd_ping(rest[0], t or 5.0)
    elif cmd == "wait" and len(rest) == 1:
        cmd_wait(rest[0], t or 120.0, opts.get("pid"), opts.get("console"))
    elif cmd == "tasks" and len(rest) == 1:
        cmd_tasks(rest[0], t or 30.0)
    elif cmd == "sh" and len(rest) == 2:
        cmd_sh(rest[0], t or 60.0, rest[1])
    else:
        die(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
