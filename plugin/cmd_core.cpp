// kmod core VMCORE: open a Linux kernel dump in the current target.
#include <cstdio>

#include "plugin/commands.h"
#include "plugin/json.h"
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
    auto& sys = s.system();
    size_t found = 0;
    for (const auto& m : sys.modules()) found += !m.ko_path.empty();
    char slide[32];
    snprintf(slide, sizeof slide, "%#llx", static_cast<unsigned long long>(sys.kernel().slide()));
    auto warnings = sys.warnings();
    if (args.flag("--json")) {
        Json j;
        j.begin_object()
            .field("dump", s.dump_path())
            .field("format", sys.dump().format())
            .field("release", sys.release())
            .field("kaslr_offset", std::string(slide))
            .field("cpus", static_cast<int64_t>(sys.dump().cpus().size()))
            .field("tasks", static_cast<uint64_t>(sys.threads().size()))
            .field("modules", static_cast<uint64_t>(sys.modules().size()))
            .field("ko_found", static_cast<uint64_t>(found))
            .field("ko_loaded", static_cast<uint64_t>(s.modules_loaded()));
        j.key("warnings").begin_array();
        for (const auto& w : warnings) j.value(w);
        j.end_array().end_object();
        out = j.str() + "\n";
        return;
    }
    out = "Opened " + s.dump_path() + " (" + sys.dump().format() + "): Linux " + sys.release() +
          ", KASLR offset " + slide + ", " + std::to_string(sys.threads().size()) + " tasks, " +
          std::to_string(sys.modules().size()) + " modules (" + std::to_string(found) + " with a .ko, " +
          std::to_string(s.modules_loaded()) + " loaded into LLDB)\n";
    for (const auto& w : warnings) out += "warning: " + w + "\n";
}

void register_core(lldb::SBCommand& kmod) {
    add_command(kmod, {"core", "Open a Linux kernel dump (in the current target, or in a new one from its vmlinux).",
                       "kmod core VMCORE [--vmlinux VMLINUX] [--modules-dir DIR]... [--json]\n"
                       "  VMCORE             ELF vmcore (QEMU dump-guest-memory, /proc/vmcore), kdump-compressed,\n"
                       "                     or makedumpfile's flattened format (converted once into the cache)\n"
                       "  --vmlinux VMLINUX  the dumped kernel's vmlinux with debug info; default: the current\n"
                       "                     target's executable, else the installed one of the dump's release\n"
                       "                     (/usr/lib/debug/boot/vmlinux-RELEASE, Debian's linux-image-*-dbg)\n"
                       "  --modules-dir DIR  search DIR for module .ko files first (repeatable); then\n"
                       "                     /usr/lib/debug/lib/modules/RELEASE and /lib/modules/RELEASE\n"
                       "Kernel tasks become LLDB threads; module .ko files load at their kernel addresses.\n"
                       "Turns on LLDB's index cache (symbols.enable-lldb-index-cache), so that LLDB indexes\n"
                       "vmlinux's DWARF once per kernel build, not in every session.\n"
                       "Read-only: nothing is ever written to the dump.",
                       {"--json"}, {"--modules-dir", "--vmlinux"}, core});
}

}  // namespace kq
