// What the GDB-remote server presents: a stopped kernel whose threads are
// kernel tasks. A dump gives a fixed snapshot; a live kernel also runs,
// stops and takes breakpoints (the run-control part, whose defaults are a
// dump's).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "vmcore/memory_source.h"
#include "vmcore/registers.h"

namespace kq {

struct RemoteThread {
    int64_t tid = 0;          // > 0
    std::string name;
    std::string description;  // stop description LLDB shows ("S (sleeping) on CPU 1")
    RegisterSet regs;
};

// One action of a resume: 'c' (continue) or 's' (step) for thread `tid`,
// or for every thread without an action of its own (tid -1).
struct ResumeAction {
    char action = 'c';
    int64_t tid = -1;
};

enum class RunState { running, stopped, gone };

class RemoteTarget {
public:
    virtual ~RemoteTarget() = default;
    virtual const std::vector<RemoteThread>& threads() = 0;
    virtual MemorySource& memory() = 0;
    // Thread reported in the initial stop (the crashing or first CPU's task).
    virtual int64_t stop_thread() = 0;
    // KASLR offset of the kernel image, answered to qOffsets.
    virtual uint64_t image_slide() = 0;

    // The stop reported for stop_thread(): its signal, and the reason LLDB
    // is given ("" lets LLDB tell a breakpoint or a step from the PC).
    virtual int stop_signal() { return 5; }
    virtual std::string stop_reason() { return "exception"; }

    // Run control. A dump cannot run: these defaults refuse.
    virtual bool can_run() { return false; }
    // Starts the target; "" once it runs, else the error reply for LLDB.
    virtual std::string resume(const std::vector<ResumeAction>&) { return "E0e"; }
    // While running: a descriptor that becomes readable when the target
    // may have stopped; poll_stop() then says whether it did (the threads
    // are read anew before it returns stopped).
    virtual int event_fd() { return -1; }
    virtual RunState poll_stop() { return RunState::stopped; }
    virtual void interrupt() {}
    // Z and z packets (type 0 software breakpoint ... 4 access watchpoint):
    // the reply for LLDB.
    virtual std::string breakpoint(bool insert, int type, uint64_t addr, uint64_t kind) { return "E0e"; }
    // M and X packets: the reply; refused unless the target allows writes.
    virtual std::string write_memory(uint64_t addr, const std::string& bytes) { return "E0e"; }
    // LLDB detaches (or kills): a live kernel runs on, without breakpoints.
    virtual void detach() {}
};

}  // namespace kq
