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

// kmod attach --kcore [FILE]: this machine's own kernel, read through
// /proc/kcore while it runs.
static void attach_kcore(lldb::SBDebugger& dbg, const Args& args, const OpenOptions& opts,
                         const std::string& vmlinux, std::string& out) {
    if (args.positional.size() > 1) throw Error("expects at most one file: kmod attach --kcore [/proc/kcore]");
    const std::string path = args.positional.empty() ? "/proc/kcore" : args.positional[0];
    lldb::SBTarget target = dbg.GetSelectedTarget();
    OpenOptions o = opts;
    o.kcore = true;
    Session& s = Session::open_core(dbg, target, path, vmlinux, o);
    auto& sys = s.kernel_system();
    const OpenedKernel opened(s, sys.cpu_count());
    if (args.flag("--json")) {
        Json j;
        j.begin_object().field("kcore", path);
        opened.end_json(j);
        out = j.str() + "\n";
        return;
    }
    out = "Reading the running kernel through " + path + ": " + opened.text(true) +
          "; it keeps running (every kmod command reads it anew)\n" + opened.warning_lines();
}

static void attach(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    const auto vmlinux = args.all("--vmlinux");
    if (vmlinux.size() > 1) throw Error("--vmlinux given twice");
    OpenOptions opts;
    opts.modules_dirs = args.all("--modules-dir");
    opts.progress = [&dbg](const std::string& line) { progress(dbg, line); };
    if (args.flag("--kcore")) return attach_kcore(dbg, args, opts, vmlinux.empty() ? "" : vmlinux[0], out);
    if (args.positional.size() != 1)
        throw Error("expects the stub's address: kmod attach HOST:PORT [--vmlinux VMLINUX], or kmod attach --kcore");
    const auto [host, port] = host_port(args.positional[0]);
    lldb::SBTarget target = dbg.GetSelectedTarget();
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
    add_command(kmod, {"attach", "Attach to a running Linux kernel through its GDB stub (QEMU/KVM -gdb), or to this machine's own through /proc/kcore.",
                       "kmod attach HOST:PORT [--vmlinux VMLINUX] [--modules-dir DIR]... [--log FILE] [--json]\n"
                       "kmod attach --kcore [FILE] [--vmlinux VMLINUX] [--modules-dir DIR]... [--json]\n"
                       "  HOST:PORT          the stub (QEMU: -gdb tcp::PORT); PORT alone means 127.0.0.1\n"
                       "  --kcore [FILE]     the kernel this debugger runs on, through FILE (default /proc/kcore;\n"
                       "                     root with CAP_SYS_RAWIO, no lockdown=confidentiality)\n"
                       "  --vmlinux VMLINUX  the running kernel's vmlinux with debug info; default: the\n"
                       "                     current target's executable (--kcore: else the installed\n"
                       "                     /usr/lib/debug/boot/vmlinux-RELEASE)\n"
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
                       "run control reach the stub (commands that write will say so in their help).\n"
                       "--kcore: the kernel is never stopped; kmod commands read its tasks and modules anew each\n"
                       "time (LLDB's threads stay those of the attach). A task running on another CPU has no\n"
                       "registers there, so its stack is a gap in kmod inuse's coverage; kmod unload checks, then\n"
                       "calls delete_module(2) itself (no breakpoints: no veto inside the kernel, no guard).",
                       {"--json", "--kcore"}, {"--modules-dir", "--vmlinux", "--log"}, attach});
}

}  // namespace kq
