"""Runs inside a lab guest booted with --host-root (chroot /host, the host's
/usr/bin/python3 and LLDB): loads the plugin, runs each kmod command given
on the command line after `kmod attach --kcore ...`, and prints one JSON
line {"results": [[command, ok, output], ...]} between markers, for
tests/live/test_kcore.py to read through the lab's agent.

usage: kcore_guest.py LLDB_PYTHON_DIR PLUGIN COMMAND..."""
import json
import sys

sys.path.insert(0, sys.argv[1])
import lldb  # noqa: E402

dbg = lldb.SBDebugger.Create()
dbg.SetAsync(False)
ci = dbg.GetCommandInterpreter()
results = []
for command in [f"plugin load {sys.argv[2]}"] + sys.argv[3:]:
    r = lldb.SBCommandReturnObject()
    ci.HandleCommand(command, r)
    results.append([command, r.Succeeded(), (r.GetOutput() or "") + (r.GetError() or "")])
print("@@KCORE-RESULTS@@")
print(json.dumps({"results": results}))
print("@@KCORE-END@@")
sys.stdout.flush()
lldb.SBDebugger.Destroy(dbg)
