"""The project's stacks (kmod threads --json) against drgn's unwind of the same
dump, task by task: the same PCs in the same order.

drgn 0.0.22 (Debian's python3-drgn, imported in this process) reads only the
paging ELF (`-p`), so the comparison runs on kaslr-paging.elf. drgn gets
vmlinux and the debug `.ko` of every loaded module (the dump's `modules/`
and the guest's debug modules), so it unwinds through module frames too.

How drgn's frames are read:
- inlined functions: drgn lists the inlined callee and its caller as separate
  frames with the same PC; frames with `is_inline` are dropped, leaving one
  frame per physical frame. Return-address PCs are compared as they are: drgn
  and the project both give the return address itself (not pc-1).
- a module drgn has no debug info for: drgn 0.0.22 stops being right at the
  first frame in it (nameless, then garbage). Only drgn's frames up to that
  one are compared, and the project's stack must go on past it.
- a user-mode PC at the end of drgn's stack (the registers saved at syscall
  entry) is dropped: the project's stacks end at the entry code.

QEMU's NT_PRSTATUS notes carry the vCPU number (1, 2, ...) in pr_pid, and
drgn uses CPU c's note for a task on CPU c only when pr_pid equals the task's
pid. So:
- a task running on a CPU at dump time (rq->curr) would be unwound by drgn
  from its stale switch-out frame. Instead drgn unwinds it from that CPU's
  note (the notes are in CPU order), given to drgn as a struct pt_regs: the
  whole stack is compared, frame 0 included.
- a task that is not running but whose pid equals pr_pid of its CPU's note
  (in the lab's dumps: init, pid 1, on CPU 0) would get that CPU's registers
  from drgn: it is skipped, counted and named in the summary.
A task drgn cannot unwind at all (an exception) is skipped the same way.

Fails if any compared task disagrees, if the two task lists differ, or if
fewer than 80% of the tasks were compared."""
import glob
import os
import struct

from kqlab import ENV, check, core_command, dump, fail, finish, json_of, lldb

try:
    import drgn
    from drgn.helpers.linux.cpumask import for_each_online_cpu
    from drgn.helpers.linux.list import list_for_each_entry
    from drgn.helpers.linux.percpu import per_cpu
    from drgn.helpers.linux.pid import for_each_task
    from drgn.helpers.linux.sched import idle_task, task_cpu
except ImportError as e:
    fail(f"drgn is not importable by this python ({e}): install python3-drgn (scripts/setup)")

IDLE_BASE = 1 << 30  # thread id of CPU n's idle task: IDLE_BASE + n
USER_TOP = 1 << 47   # x86-64 user addresses lie below
MIN_COMPARED = 0.8


def prstatus_notes(path):
    """(pr_pid, pr_reg bytes) of each NT_PRSTATUS note of an ELF core, in file
    order. Handles extended numbering (e_phnum 0xffff: the count is sh_info of
    section 0)."""
    with open(path, "rb") as f:
        eh = f.read(64)
        if eh[:4] != b"\x7fELF" or eh[4] != 2:
            fail(f"{path}: not an ELF64 file")
        phoff, shoff = struct.unpack_from("<QQ", eh, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", eh, 0x36)
        if phnum == 0xffff:
            f.seek(shoff)
            phnum = struct.unpack_from("<I", f.read(64), 0x2c)[0]
        f.seek(phoff)
        phdrs = f.read(phentsize * phnum)
        notes = []
        for i in range(phnum):
            p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", phdrs, i * phentsize)
            if p_type != 4:  # PT_NOTE
                continue
            f.seek(p_offset)
            data = f.read(p_filesz)
            o = 0
            while o + 12 <= len(data):
                namesz, descsz, ntype = struct.unpack_from("<III", data, o)
                o += 12
                name = data[o:o + namesz].rstrip(b"\0")
                o += (namesz + 3) & ~3
                desc = data[o:o + descsz]
                o += (descsz + 3) & ~3
                if name == b"CORE" and ntype == 1:  # NT_PRSTATUS: pr_pid at 32, pr_reg at 112
                    notes.append((struct.unpack_from("<i", desc, 32)[0], desc[112:112 + 27 * 8]))
    return notes


def drgn_program(path):
    prog = drgn.Program()
    prog.set_core_dump(path)
    kos = sorted(glob.glob(os.path.join(ENV["KQ_DUMPS"], "modules", "*.ko")))
    kos += sorted(glob.glob(os.path.join(ENV["KQ_DEBUG_MODULES"], "**", "*.ko"), recursive=True))
    try:
        prog.load_debug_info([ENV["KQ_VMLINUX"]] + kos)
    except drgn.MissingDebugInfoError as e:
        print(f"note: drgn: {e}")  # modules without debug info: handled per frame
    return prog


def module_ranges(prog):
    ranges = []
    for m in list_for_each_entry("struct module", prog["modules"].address_of_(), "list"):
        base = m.core_layout.base.value_()
        ranges.append((base, base + m.core_layout.size.value_()))
    return ranges


def drgn_frames(trace, modules):
    """(pc, name) of drgn's physical frames, and whether drgn stopped in a
    module it has no debug info for (its last frame is then that module frame)."""
    frames = []
    for fr in trace:
        if fr.is_inline:
            continue
        frames.append((fr.pc, fr.name or "?"))
        if fr.name is None and any(lo <= fr.pc < hi for lo, hi in modules):
            return frames, True
    while frames and frames[-1][0] < USER_TOP:
        frames.pop()
    return frames, False


def drgn_stacks(prog, notes):
    """{tid: (frames, stopped_in_module, how)} for the tasks drgn unwinds right,
    {tid: reason} for the others."""
    cpus = list(for_each_online_cpu(prog))
    check(len(notes) == len(cpus), f"drgn: {len(cpus)} online CPUs, {len(notes)} NT_PRSTATUS notes")
    running = {per_cpu(prog["runqueues"], c).curr.value_() for c in cpus}
    tasks = [(t.pid.value_(), t) for t in for_each_task(prog)]
    tasks += [(IDLE_BASE + c, idle_task(prog, c)) for c in cpus]
    modules = module_ranges(prog)
    stacks, skipped = {}, {}
    regs_type = prog.type("struct pt_regs")
    for tid, task in tasks:
        cpu = task_cpu(task)
        pid = task.pid.value_()
        try:
            if task.value_() in running:
                # The first 21 words of user_regs_struct (pr_reg) are struct pt_regs.
                regs = drgn.Object.from_bytes_(prog, regs_type, notes[cpu][1][:regs_type.size])
                trace, how = prog.stack_trace(regs), f"on CPU {cpu}, from its note"
            elif cpu < len(notes) and notes[cpu][0] == pid:
                skipped[tid] = f"not running, pid {pid} == pr_pid of CPU {cpu}'s note: drgn takes that CPU's registers"
                continue
            else:
                trace, how = prog.stack_trace(task), "switched out"
            # A frame's pc may be unknown to drgn (LookupError) only when read.
            frames, stopped = drgn_frames(trace, modules)
        except (drgn.FaultError, LookupError, ValueError) as e:
            skipped[tid] = f"drgn cannot unwind it: {e}"
            continue
        stacks[tid] = (frames, stopped, how)
    return stacks, skipped


def agrees(ours, theirs, stopped):
    if stopped:
        return len(ours) > len(theirs) and ours[:len(theirs)] == theirs
    return ours == theirs


path = dump("kaslr-paging.elf")
out, _ = lldb([core_command(path), "kmod threads --json"])
threads = json_of(out[1], "kmod threads --json")["threads"]
ours = {t["tid"]: t for t in threads}

prog = drgn_program(path)
stacks, skipped = drgn_stacks(prog, prstatus_notes(path))

drgn_tids = set(stacks) | set(skipped)
check(drgn_tids == set(ours), f"drgn and kmod threads list the same {len(ours)} tasks"
      + ("" if drgn_tids == set(ours) else f" (only drgn: {sorted(drgn_tids - set(ours))[:10]}, "
                                           f"only ours: {sorted(set(ours) - drgn_tids)[:10]})"))

agree, truncated = 0, 0
for tid in sorted(stacks):
    if tid not in ours:
        continue
    theirs, stopped, how = stacks[tid]
    t = ours[tid]
    mine = [int(f["pc"], 16) for f in t["frames"]]
    truncated += stopped
    if agrees(mine, [pc for pc, _ in theirs], stopped):
        agree += 1
        continue
    check(False, f"tid {tid} {t['comm']} ({how}{', drgn stopped in a module' if stopped else ''}): stacks differ")
    print("       ours: " + " ".join(f"{int(f['pc'], 16):x}:{f['symbol']}" for f in t["frames"]))
    print("       drgn: " + " ".join(f"{pc:x}:{name}" for pc, name in theirs))

compared = len([tid for tid in stacks if tid in ours])
why = [f"{ours[tid]['comm'] if tid in ours else '?'} {tid}: {skipped[tid]}" for tid in sorted(skipped)]
print(f"{compared} tasks compared, {agree} agree, {len(skipped)} skipped"
      + (f" ({'; '.join(why)})" if why else "")
      + (f"; {truncated} compared up to a module drgn has no debug info for" if truncated else ""))
check(agree == compared, f"every compared task agrees with drgn ({agree}/{compared})")
check(compared >= MIN_COMPARED * len(ours), f"{compared} of {len(ours)} tasks compared (at least {MIN_COMPARED:.0%})")
finish()
