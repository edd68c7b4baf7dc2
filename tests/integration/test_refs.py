"""The raw reference scan's attribution on the lab's kaslr.elf: every word
pointing into kq_idle is the kernel's bookkeeping of the loaded module, so
`kmod inuse kq_idle` is SAFE with no evidence at all and full coverage; real
references stay evidence (the reboot chain's link to kq_notifier's notifier
block, the open file's file_operations of kq_chardev, the timer wheel's link
between kq_timer and kq_work); `kmod whatis` names the slab cache of a word
the scan attributed to a slab object."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kqlab import ENV, check, dump, finish, json_of, lldb

CONTAINERS = {"kernel", "percpu", "module", "stack", "slab", "page", "bookkeeping", "unknown"}
SEVERITIES = {"evidence", "advisory", "bookkeeping"}

path = dump("kaslr.elf")
# The .ko files the dumps were made with.
core = (f"kmod core {path} --modules-dir {os.path.join(ENV['KQ_DUMPS'], 'modules')} "
        f"--modules-dir {ENV['KQ_DEBUG_MODULES']}")

# Every `next` slot of the reboot chain: its head and each notifier block's.
CHAIN = ("script t = lldb.debugger.GetSelectedTarget(); p = t.GetProcess(); e = lldb.SBError(); "
         "h = t.FindFirstGlobalVariable('reboot_notifier_list').GetChildMemberWithName('head'); "
         "nb = t.FindFirstType('notifier_block'); "
         "off = [nb.GetFieldAtIndex(i).GetOffsetInBytes() for i in range(nb.GetNumberOfFields()) "
         "if nb.GetFieldAtIndex(i).GetName() == 'next'][0]; "
         "slots = [h.GetLoadAddress()]; n = h.GetValueAsUnsigned(); "
         "exec('while n and len(slots) < 100:\\n slots.append(n + off); n = p.ReadPointerFromMemory(n + off, e)'); "
         "print('CHAIN ' + ' '.join(hex(s) for s in slots))")

modules = ["kq_idle", "kq_notifier", "kq_chardev", "kq_timer", "kq_dep_a"]
cmds = [core] + [f"kmod refs {m} --json --quiet" for m in modules] + [
    "kmod inuse kq_idle --json --quiet", "p/x &kq_notifier_nb", "p/x &kq_work_item", CHAIN]
out, text = lldb(cmds)
refs = {m: json_of(out[1 + i], f"kmod refs {m}") for i, m in enumerate(modules)}
inuse = json_of(out[1 + len(modules)], "kmod inuse kq_idle")
nb_addr, work_addr = [int((o or "= 0").split("= ")[-1].strip(), 16) for o in out[2 + len(modules):4 + len(modules)]]
chain = next((l.split()[1:] for l in text.splitlines() if l.startswith("CHAIN ")), [])

for m, r in refs.items():
    bad = [(x["container"], x["severity"]) for x in r["refs"]
           if x["container"] not in CONTAINERS or x["severity"] not in SEVERITIES]
    check(not bad, f"kmod refs {m}: containers and severities are known ones: {bad[:5]}")
    check(all((x["container"] == "bookkeeping") == (x["severity"] == "bookkeeping") for x in r["refs"]),
          f"kmod refs {m}: bookkeeping words and only they have severity bookkeeping")

# kq_idle: nothing but bookkeeping, of each kind the kernel keeps.
idle = refs["kq_idle"]["refs"]
kinds = {x["where"].split(" of ")[0] for x in idle}
check(len(idle) > 0 and all(x["severity"] == "bookkeeping" for x in idle),
      f"kmod refs kq_idle: {len(idle)} words, all bookkeeping: "
      f"{[(x['container'], x['where']) for x in idle if x['severity'] != 'bookkeeping']}")
for k in ("sect_attrs", "notes_attrs", "vmap_area", "vm_struct", "points into struct module"):
    check(k in kinds, f"kmod refs kq_idle: bookkeeping includes {k}")

# kmod inuse kq_idle: SAFE, no evidence, every provider complete; the scan
# counts the bookkeeping in its coverage line.
check(inuse["verdict"] == "SAFE", f"kmod inuse kq_idle: verdict {inuse['verdict']} {inuse['reasons']}")
check(inuse["evidence"] == [], f"kmod inuse kq_idle: no evidence: {[(e['kind'], e['subject']) for e in inuse['evidence']]}")
check(all(c["complete"] for c in inuse["coverage"]),
      f"kmod inuse kq_idle: full coverage: {[(c['provider'], c['gap']) for c in inuse['coverage'] if not c['complete']]}")
scan = [c for c in inuse["coverage"] if c["provider"] == "memory reference scan"]
check(scan and f"{len(idle)} words point into the module, {len(idle)} of them the kernel's bookkeeping" in scan[0]["covered"],
      f"kmod inuse kq_idle: the scan's coverage counts the bookkeeping: {scan}")

# kq_notifier: the reboot chain links its notifier block from kernel data,
# the chain's head or the `next` of the block before it: evidence.
to_nb = [x for x in refs["kq_notifier"]["refs"] if int(x["value"], 16) == nb_addr]
in_chain = [x for x in to_nb if x["container"] == "kernel" and x["severity"] == "evidence" and x["vaddr"] in chain]
check(bool(in_chain), f"kmod refs kq_notifier: the reboot chain's link to kq_notifier_nb is evidence: "
      f"{[(x['where'], x['container'], x['severity']) for x in to_nb]}, chain {chain}")
check(any("reboot_notifier_list" in x["where"] for x in in_chain),
      f"kmod refs kq_notifier: the link is attributed to the chain's head: {[x['where'] for x in in_chain]}")

# kq_chardev: the open file's f_op, in a filp slab object, is evidence.
fops = [x for x in refs["kq_chardev"]["refs"] if x["points_to"].endswith("kq_chardev_fops")]
check(any(x["container"] == "slab" and x["where"].startswith("filp object ") and x["severity"] == "evidence"
          for x in fops), f"kmod refs kq_chardev: a filp object points at kq_chardev_fops: {[x['where'] for x in fops]}")

# kq_timer: its pending timer is linked from the timer wheel: the bucket's
# head (per-CPU timer_bases) or the timer before it in the same bucket
# (another module's, e.g. kq_work's delayed work, as the dump's moment has it).
wheel = [x for x in refs["kq_timer"]["refs"] if x["points_to"].startswith("kq_timer`kq_timer_list")]
check(any(x["severity"] == "evidence" for x in wheel),
      f"kmod refs kq_timer: the timer wheel links kq_timer_list: {[(x['where'], x['severity']) for x in wheel]}")

# Evidence is what is neither bookkeeping nor stale: each module that holds
# something keeps some.
for m in ("kq_notifier", "kq_chardev", "kq_timer"):
    n = sum(1 for x in refs[m]["refs"] if x["severity"] == "evidence")
    check(n > 0, f"kmod refs {m}: {n} words of evidence")

# kmod whatis on words the scan attributed to slab objects: the cache, the
# object and whether it is allocated.
slab_hits = [x for m in modules for x in refs[m]["refs"] if x["container"] == "slab"]
allocated = [x for x in slab_hits if x["severity"] == "evidence"]
free = [x for x in slab_hits if x["where"].endswith("(free)")]
book_slab = [x for x in idle if ", in " in x["where"] and " object 0x" in x["where"]]
picks = allocated[:1] + free[:1] + book_slab[:1]
check(bool(allocated) and bool(book_slab), f"slab-attributed words to ask kmod whatis about: {len(picks)}")
if picks:
    out, _ = lldb([core] + [f"kmod whatis {x['vaddr']} --json" for x in picks])
    for x, o in zip(picks, out[1:]):
        w = json_of(o, f"kmod whatis {x['vaddr']}")
        where = x["where"].split(", in ")[-1]  # bookkeeping: "WHAT +OFF, in CACHE object 0x... +0xOFF"
        cache, obj = where.split(" object ")[0], where.split(" object ")[1].split()[0]
        state = "free" if "(free)" in where else "allocated"
        check(w and w["kind"] == "slab" and w["owner"] == cache and f"object {obj} " in w["detail"]
              and state in w["detail"], f"kmod whatis {x['vaddr']}: {cache} object {obj}, {state}: {w}")
finish()
