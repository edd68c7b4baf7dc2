// A dump as a RemoteTarget: its memory, and the kernel's tasks as threads.
#pragma once
#include <vector>

#include "kernel/kernel.h"
#include "remote/remote_target.h"

namespace kq {

class DumpTarget : public RemoteTarget {
public:
    DumpTarget(MemorySource& mem, const std::vector<Thread>& tasks, uint64_t slide);

    const std::vector<RemoteThread>& threads() override { return threads_; }
    MemorySource& memory() override { return mem_; }
    int64_t stop_thread() override { return stop_; }
    uint64_t image_slide() override { return slide_; }

private:
    MemorySource& mem_;
    std::vector<RemoteThread> threads_;
    int64_t stop_ = 1;
    uint64_t slide_;
};

// "S (sleeping), last ran on CPU 1" / "R (running) on CPU 0".
std::string describe_thread_state(const Thread& t);

}  // namespace kq
