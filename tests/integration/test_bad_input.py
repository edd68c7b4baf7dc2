"""Bad input gets one clear error line or a partial result that says what is
missing; LLDB never crashes or hangs."""
import os
import shutil
import subprocess
import tempfile

from kqlab import ENV, check, core_command, dump, finish, lldb

tmp = tempfile.mkdtemp(prefix="kq-bad-")
try:
    elf = dump("kaslr.elf")

    def one_error(out, text, what, needle):
        errors = [l for l in text.splitlines() if l.startswith("error: kmod core")]
        check(len(errors) == 1 and needle in errors[0], f"{what}: one error line containing '{needle}': {errors}")

    # Not a dump at all.
    # lldb -b stops at a failing command: run it through the interpreter so
    # that `process status` still runs after it.
    out, text = lldb(["script lldb.debugger.HandleCommand('kmod core /bin/ls')", "process status"])
    one_error(out, text, "not a dump", "/bin/ls")
    no_process = [l for l in text.splitlines() if l.startswith("error:") and "process" in l.lower()]
    check(out[1] is not None and no_process and "stopped" not in out[1],
          f"not a dump: no process was created: {no_process}")

    # No target and no installed vmlinux for the dump's release: the error
    # says what to pass.
    if not os.path.exists(f"/usr/lib/debug/boot/vmlinux-{ENV['KQ_RELEASE']}"):
        out, text = lldb([core_command(elf)], target=False)
        one_error(out, text, "no target, no vmlinux", "--vmlinux")

    # A missing file.
    out, text = lldb([f"kmod core {tmp}/nothing"])
    one_error(out, text, "missing file", "nothing")

    # A truncated dump: an error, or a partial result that says what is missing.
    trunc = os.path.join(tmp, "truncated.elf")
    with open(elf, "rb") as src, open(trunc, "wb") as dst:
        dst.write(src.read(48 << 20))
    out, text = lldb([core_command(trunc), "kmod list"])
    said = any(l.startswith("error: kmod core") or l.startswith("warning:") for l in text.splitlines())
    check(said, "truncated dump: an error or warnings, no crash")
    check("Segmentation" not in text and "PLEASE submit a bug report" not in text, "truncated dump: LLDB did not crash")

    # A dump of another kernel than the vmlinux (its VMCOREINFO says so).
    other = os.path.join(tmp, "other-kernel.elf")
    shutil.copyfile(elf, other)
    with open(other, "r+b") as f:
        data = f.read(1 << 20)
        for key in (b"OSRELEASE=", b"BUILD-ID="):
            at = data.find(key)
            if at < 0:
                f.seek(0)
                blob = f.read()
                at = blob.find(key)
            check(at >= 0, f"other kernel: dump has {key.decode()}")
            f.seek(at + len(key))
            c = f.read(1)
            f.seek(at + len(key))
            f.write(b"9" if c != b"9" else b"8")
    out, text = lldb([core_command(other)])
    one_error(out, text, "another kernel's dump", "does not match")

    # A vmlinux that is not a kernel.
    out, text = lldb([core_command(elf)], vmlinux="/bin/ls")
    errors = [l for l in text.splitlines() if l.startswith("error: kmod core")]
    check(len(errors) == 1, f"wrong vmlinux: one error line: {errors}")

    # Missing .ko files: reported by kmod list, the analysis goes on.
    out, text = lldb([f"kmod core {elf}", "kmod list", "kmod threads --module kq_sleep --json"])
    check(out[1] is not None and any("kq_sleep" in l and "not found" in l for l in out[1].splitlines()),
          "missing .ko: kmod list says 'not found'")
    check(out[2] is not None and '"threads"' in out[2], "missing .ko: kmod threads still answers")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
finish()
