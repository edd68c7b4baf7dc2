// What the GDB-remote server presents: a stopped kernel whose threads are
// kernel tasks. A dump gives a fixed snapshot.
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

class RemoteTarget {
public:
    virtual ~RemoteTarget() = default;
    virtual const std::vector<RemoteThread>& threads() = 0;
    virtual MemorySource& memory() = 0;
    // Thread reported in the initial stop (the crashing or first CPU's task).
    virtual int64_t stop_thread() = 0;
    // KASLR offset of the kernel image, answered to qOffsets.
    virtual uint64_t image_slide() = 0;
};

}  // namespace kq
