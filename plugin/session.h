// The kernel behind an LLDB target: the opened system, the GDB-remote
// server LLDB is connected to, and which .ko files were loaded.
#pragma once
#include <memory>
#include <string>

#include <lldb/API/LLDB.h>

#include "kernel/linux/linux_system.h"
#include "remote/dump_target.h"
#include "remote/gdb_server.h"
#include "unwinder/linux_unwind.h"

namespace kq {

class Session {
public:
    // Opens `dump` for vmlinux (`vmlinux`, else the target's executable,
    // else default_vmlinux), connects LLDB to it and loads module .ko files
    // at their kernel addresses. Without a target (invalid `target`) one is
    // created and selected, and `target` set to it.
    // Throws kq::Error with one line.
    static Session& open_core(lldb::SBDebugger& dbg, lldb::SBTarget& target, const std::string& dump,
                              const std::string& vmlinux, const OpenOptions& opts);
    // The installed vmlinux with debug info of the dump's kernel release
    // (Debian's -dbg path first), or throws kq::Error saying what to pass.
    static std::string default_vmlinux(const std::string& dump);
    // The session of the target, or throws kq::Error telling how to open one.
    static Session& of(lldb::SBTarget& target);
    static void close(lldb::SBTarget& target);

    LinuxSystem& system() { return *system_; }
    // The loaded module named `name`, or throws kq::Error listing the loaded ones.
    const Module& module(const std::string& name) const;
    const std::string& dump_path() const { return dump_path_; }
    size_t modules_loaded() const { return modules_loaded_; }
    // The project's unwinder over this kernel, set up on first use.
    LinuxUnwinder& unwinder();

    ~Session();

private:
    void load_modules(lldb::SBTarget& target, const std::function<void(const std::string&)>& say);
    static std::string symbol_copy_path(const std::string& vmlinux);
    std::string write_symbol_copy(const std::string& vmlinux, const std::function<void(const std::string&)>& say);
    lldb::SBModule read_kernel_symbols(lldb::SBDebugger& dbg, lldb::SBTarget& target, bool has_target,
                                       const std::string& file, const std::function<void(const std::string&)>& say);

    lldb::SBTarget target_;
    std::string dump_path_;
    std::unique_ptr<LinuxSystem> system_;
    std::unique_ptr<DumpTarget> remote_target_;
    std::unique_ptr<GdbServer> server_;
    std::unique_ptr<LinuxUnwinder> unwinder_;
    size_t modules_loaded_ = 0;
};

}  // namespace kq
