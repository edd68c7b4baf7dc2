// What the commands that drive a live kernel (kmod unload, kmod quiesce)
// share: the live target of a session, breakpoints of their own, a host
// command run alongside (--trigger), the modules a quiesce holds, and
// handing LLDB the kernel's new state afterwards.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <sys/types.h>
#include <vector>

#include <lldb/API/LLDB.h>

#include "plugin/session.h"

namespace kq {

// The session's live kernel, or throws kq::Error: `command` needs one.
LiveTarget& live_kernel(Session& s, const std::string& command);

// Software breakpoints of one command, removed when it ends (those LLDB
// already had at the same address are left alone).
class OwnBreakpoints {
public:
    explicit OwnBreakpoints(LiveTarget& t) : t_(t) {}
    ~OwnBreakpoints();
    void insert(uint64_t addr);  // throws kq::Error if the stub refuses
    void remove(uint64_t addr);
    bool has(uint64_t addr) const { return mine_.count(addr) || t_.has_breakpoint(addr); }

private:
    LiveTarget& t_;
    std::set<uint64_t> mine_;
};

// A host command run while the kernel is driven (`sh -c CMD`), its output
// kept in a file until it ends.
class HostCommand {
public:
    explicit HostCommand(const std::string& command);  // throws kq::Error
    ~HostCommand();                                    // kills it if it still runs
    bool finished();
    int exit_code() const { return exit_; }            // -1 while it runs or if killed
    std::string output() const;
    const std::string& command() const { return command_; }

private:
    std::string command_, out_path_;
    pid_t pid_ = -1;
    int exit_ = -1;
    bool done_ = false;
};

// Modules `kmod quiesce` set GOING in this session (their state is ours).
std::set<std::string>& quiesced_modules(const Session& s);

// Whether a task is a user task (not a kernel thread), by the kernel's task list.
std::function<bool(int64_t)> user_task(const LinuxSystem& sys);

// After a command ran the kernel behind LLDB's back: LLDB reads its threads,
// registers and memory anew (a resume that ends at once in a stop).
void resync_lldb(lldb::SBTarget& target, LiveTarget& live);

}  // namespace kq
