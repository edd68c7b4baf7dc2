// The kernel behind an LLDB target: the opened system (a Linux or FreeBSD
// dump, or a live Linux kernel behind a GDB stub), the GDB-remote server
// LLDB is connected to, and which .ko files were loaded.
#pragma once
#include <map>
#include <memory>
#include <string>

#include <lldb/API/LLDB.h>

#include "kernel/freebsd/freebsd_system.h"
#include "kernel/kernel_system.h"
#include "kernel/linux/linux_system.h"
#include "remote/dump_target.h"
#include "remote/gdb_server.h"
#include "remote/live_target.h"
#include "unwinder/kernel_unwinder.h"

namespace kq {

class Session {
public:
    // Opens `dump` for vmlinux (`vmlinux`, else the target's executable,
    // else default_vmlinux), connects LLDB to it and loads module .ko files
    // at their kernel addresses; the image says which OS it is (detect_os:
    // vmlinux, or FreeBSD's kernel.debug). Without a target (invalid
    // `target`) one is created and selected, and `target` set to it.
    // Throws kq::Error with one line.
    static Session& open_core(lldb::SBDebugger& dbg, lldb::SBTarget& target, const std::string& dump,
                              const std::string& vmlinux, const OpenOptions& opts);
    // Attaches to the running kernel behind the GDB stub at host:port
    // (QEMU/KVM -gdb) through the project's proxy (remote/live_target.h):
    // finds the KASLR offset, presents the kernel's tasks as threads, loads
    // module .ko files at their live addresses. vmlinux: `vmlinux`, else
    // the target's executable. The guest stays stopped until LLDB resumes
    // it; detaching lets it run on. proxy_log: a file that receives every
    // packet sent to and from the stub ("" for none).
    static Session& open_live(lldb::SBDebugger& dbg, lldb::SBTarget& target, const std::string& host, int port,
                              const std::string& vmlinux, const OpenOptions& opts, const std::string& proxy_log);
    // The installed vmlinux with debug info of the dump's kernel release
    // (Debian's -dbg path first), or throws kq::Error saying what to pass.
    // kcore: `dump` is a /proc/kcore.
    static std::string default_vmlinux(const std::string& dump, bool kcore = false);
    // The session of the target, or throws kq::Error telling how to open one.
    // Through /proc/kcore the kernel runs on: its tasks and modules are read
    // anew here, once per command.
    static Session& of(lldb::SBTarget& target);
    static void close(lldb::SBTarget& target);

    // The kernel, whichever its OS. Live: as system().
    KernelSystem& kernel_system();
    // For what only Linux has (the log, crash context, slabs): the Linux
    // kernel, or throws kq::Error saying the command needs one.
    LinuxSystem& linux_system();
    // The Linux kernel as of the last stop; a Linux session's only (see
    // linux_system()). Live: throws kq::Error while the kernel runs or
    // after LLDB detached; after it ran, the unwinder and LLDB's loaded .ko
    // files follow the kernel's modules.
    LinuxSystem& system();
    // The live kernel's proxy; nullptr for a dump.
    LiveTarget* live() { return live_; }
    // The running kernel through /proc/kcore (opened with OpenOptions::kcore).
    bool kcore() const { return kcore_; }
    // kcore: the tasks and modules read anew (Session::of does it per command).
    void refresh_kcore();
    // The loaded module named `name`, or throws kq::Error listing the loaded ones.
    const Module& module(const std::string& name) const;
    const std::string& dump_path() const { return dump_path_; }  // live: HOST:PORT
    size_t modules_loaded() const { return modules_loaded_; }
    // The project's unwinder over this kernel, set up on first use.
    KernelUnwinder& unwinder();

    ~Session();

private:
    void load_modules(lldb::SBTarget& target, const std::function<void(const std::string&)>& say);
    bool place_ko(lldb::SBTarget& target, const Module& m, lldb::SBModule& mod);
    void sync_live_modules(const std::function<void(const std::string&)>& say);
    // Steps open_core and open_live share.
    static void enable_index_cache(lldb::SBDebugger& dbg);
    static bool has_kernel_target(lldb::SBTarget& target, const char* refusal);
    static std::string target_vmlinux(lldb::SBTarget& target, const std::string& vmlinux);
    lldb::SBModule open_freebsd(lldb::SBDebugger& dbg, lldb::SBTarget& target, bool has_target, const std::string& kernel,
                                const std::string& dump, const OpenOptions& opts);
    const KernelSystem& opened() const;
    lldb::SBModule open_system(lldb::SBDebugger& dbg, lldb::SBTarget& target, bool has_target, const std::string& vmlinux,
                               const std::function<std::unique_ptr<LinuxSystem>()>& open,
                               const std::function<void(const std::string&)>& say);
    static void connect_lldb(lldb::SBDebugger& dbg, lldb::SBTarget& target, int port, const std::string& server);
    static void place_kernel(lldb::SBDebugger& dbg, lldb::SBTarget& target, lldb::SBModule& kernel, uint64_t slide);
    static Session& keep(std::unique_ptr<Session> s, lldb::SBTarget& target);
    static std::string symbol_copy_path(const std::string& vmlinux);
    std::string write_symbol_copy(const std::string& vmlinux, const std::function<void(const std::string&)>& say);
    lldb::SBModule read_kernel_symbols(lldb::SBDebugger& dbg, lldb::SBTarget& target, bool has_target,
                                       const std::string& file, const char* triple,
                                       const std::function<void(const std::string&)>& say);

    lldb::SBTarget target_;
    std::string dump_path_;
    std::unique_ptr<LinuxSystem> system_;      // a Linux kernel, or
    std::unique_ptr<FreebsdSystem> freebsd_;   // a FreeBSD one
    std::unique_ptr<RemoteTarget> remote_target_;
    std::unique_ptr<GdbServer> server_;
    std::unique_ptr<KernelUnwinder> unwinder_;
    size_t modules_loaded_ = 0;
    LiveTarget* live_ = nullptr;  // remote_target_, when it is a live kernel
    bool kcore_ = false;
    uint64_t live_stop_seen_ = 0;
    std::map<std::string, std::pair<uint64_t, lldb::SBModule>> live_kos_;  // name -> (struct module, its .ko)
};

}  // namespace kq
