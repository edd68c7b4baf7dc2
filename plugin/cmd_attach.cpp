// kmod attach HOST:PORT: a running kernel through its GDB stub.
#include <cstdlib>

#include "plugin/commands.h"
#include "plugin/opened_kernel.h"
#include "plugin/session.h"

namespace kq {

// "HOST:PORT", "[V6]:PORT" or "PORT" (on 127.0.0.1).
static std::pair<std::string, int> host_port(const std::string& s) {
    std::string host = "127.0.0.1", port = s;
    if (auto colon = s.rfind(':'); colon != std::string::npos) {
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
        if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    }
    auto n = parse_number(port);
    if (host.empty() || !n || *n == 0 || *n > 65535) throw Error("expects HOST:PORT of a GDB stub, not '" + s + "'");
    return {host, static_cast<int>(*n)};
}

static void attach(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    if (args.positional.size() != 1) throw Error("expects the stub's address: kmod attach HOST:PORT [--vmlinux VMLINUX]");
    const auto [host, port] = host_port(args.positional[0]);
    lldb::SBTarget target = dbg.GetSelectedTarget();
    const auto vmlinux = args.all("--vmlinux");
    if (vmlinux.size() > 1) throw Error("--vmlinux given twice");
    OpenOptions opts;
    opts.modules_dirs = args.all("--modules-dir");
    opts.progress = [&dbg](const std::string& line) { progress(dbg, line); };
    std::string log = args.value("--log");
    if (log.empty())
        if (const char* env = getenv("KQ_PROXY_LOG")) log = env;
    Session& s = Session::open_live(dbg, target, host, port, vmlinux.empty() ? "" : vmlinux[0], opts, log);
    const OpenedKernel opened(s, s.live()->vcpus().size());
    if (args.flag("--json")) {
        Json j;
        j.begin_object().field("stub", s.dump_path());
        opened.end_json(j);
        out = j.str() + "\n";
        return;
    }
    out = "Attached to " + s.dump_path() + ": " + opened.text(true) + "; the kernel is stopped\n" +
          opened.warning_lines();
}

void register_attach(lldb::SBCommand& kmod) {
    add_command(kmod, {"attach", "Attach to a running Linux kernel through its GDB stub (QEMU/KVM -gdb).",
                       "kmod attach HOST:PORT [--vmlinux VMLINUX] [--modules-dir DIR]... [--log FILE] [--json]\n"
                       "  HOST:PORT          the stub (QEMU: -gdb tcp::PORT); PORT alone means 127.0.0.1\n"
                       "  --vmlinux VMLINUX  the running kernel's vmlinux with debug info; default: the\n"
                       "                     current target's executable\n"
                       "  --modules-dir DIR  search DIR for module .ko files first (repeatable); then\n"
                       "                     /usr/lib/debug/lib/modules/RELEASE and /lib/modules/RELEASE\n"
                       "  --log FILE         append every packet exchanged with the stub to FILE\n"
                       "                     (default: $KQ_PROXY_LOG)\n"
                       "LLDB talks to kquiesce's proxy, which talks to the stub: the kernel's tasks are\n"
                       "LLDB's threads (on-CPU tasks with their CPU's registers, the others from their\n"
                       "switch frames), read anew at every stop; the KASLR offset is found and checked\n"
                       "(linux_banner must read back); module .ko files load at their live addresses.\n"
                       "The kernel stays stopped until 'continue'; breakpoints by name work; ^C or\n"
                       "'process interrupt' stops it again; 'detach' (or quitting) lets it run on.\n"
                       "Every kmod command works on the stopped kernel; kmod refs and kmod inuse's\n"
                       "memory scan read its RAM through the kernel's direct map (about 10 s for 256 MiB).\n"
                       "Read-only: LLDB's memory and register writes are refused; only breakpoints and\n"
                       "run control reach the stub (commands that write will say so in their help).",
                       {"--json"}, {"--modules-dir", "--vmlinux", "--log"}, attach});
}

}  // namespace kq
