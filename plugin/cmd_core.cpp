// kmod core VMCORE: open a Linux or FreeBSD kernel dump in the current target.
#include "plugin/commands.h"
#include "plugin/opened_kernel.h"
#include "plugin/session.h"

namespace kq {

static void core(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    if (args.positional.size() != 1) throw Error("expects one dump file: kmod core VMCORE [--vmlinux VMLINUX]");
    lldb::SBTarget target = dbg.GetSelectedTarget();
    const auto vmlinux = args.all("--vmlinux");
    if (vmlinux.size() > 1) throw Error("--vmlinux given twice");
    OpenOptions opts;
    opts.modules_dirs = args.all("--modules-dir");
    opts.progress = [&dbg](const std::string& line) { progress(dbg, line); };
    Session& s = Session::open_core(dbg, target, args.positional[0], vmlinux.empty() ? "" : vmlinux[0], opts);
    auto& sys = s.kernel_system();
    const OpenedKernel opened(s, sys.cpu_count());
    if (args.flag("--json")) {
        Json j;
        j.begin_object().field("dump", s.dump_path()).field("format", sys.dump().format());
        opened.end_json(j);
        out = j.str() + "\n";
        return;
    }
    out = "Opened " + s.dump_path() + " (" + sys.dump().format() + "): " + opened.text(false) + "\n" +
          opened.warning_lines();
}

void register_core(lldb::SBCommand& kmod) {
    add_command(kmod, {"core", "Open a Linux or FreeBSD kernel dump (in the current target, or in a new one from its kernel image).",
                       "kmod core VMCORE [--vmlinux VMLINUX] [--modules-dir DIR]... [--json]\n"
                       "  VMCORE             Linux: ELF vmcore (QEMU dump-guest-memory, /proc/vmcore), kdump-\n"
                       "                     compressed, or makedumpfile's flattened format (converted once into\n"
                       "                     the cache); FreeBSD amd64: a minidump or a full dump (savecore's vmcore.N)\n"
                       "  --vmlinux VMLINUX  the dumped kernel's image with debug info: Linux's vmlinux or FreeBSD's\n"
                       "                     kernel.debug (which OS it is comes from the image); default: the current\n"
                       "                     target's executable, else the installed vmlinux of the dump's release\n"
                       "                     (/usr/lib/debug/boot/vmlinux-RELEASE, Debian's linux-image-*-dbg)\n"
                       "  --modules-dir DIR  search DIR for module .ko files first (repeatable); then Linux:\n"
                       "                     /usr/lib/debug/lib/modules/RELEASE and /lib/modules/RELEASE;\n"
                       "                     FreeBSD: /usr/lib/debug/PATH.debug and PATH as the kernel recorded it\n"
                       "Kernel tasks become LLDB threads; module .ko files load at their kernel addresses.\n"
                       "Turns on LLDB's index cache (symbols.enable-lldb-index-cache), so that LLDB indexes\n"
                       "vmlinux's DWARF once per kernel build, not in every session.\n"
                       "Read-only: nothing is ever written to the dump.",
                       {"--json"}, {"--modules-dir", "--vmlinux"}, core});
}

}  // namespace kq
