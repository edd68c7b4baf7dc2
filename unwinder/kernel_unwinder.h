// An unwinder set up for one kernel, as the OS-neutral commands use it
// (LinuxUnwinder and FreebsdUnwinder implement it): a thread's frames, the
// return addresses a scan of its stack finds, and names for code.
#pragma once
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "unwinder/code_map.h"
#include "unwinder/frame.h"
#include "unwinder/unwinder.h"

namespace kq {

class KernelUnwinder {
public:
    virtual ~KernelUnwinder() = default;

    virtual std::vector<Frame> unwind(const Thread& t) = 0;
    // Every validated return address on the thread's stacks, labelled
    // against `frames` (see Unwinder::scan).
    virtual std::vector<StackWord> scan(const Thread& t, const std::vector<Frame>& frames) = 0;
    virtual const CodeMap& code_map() const = 0;
    // Stacks other than the threads' own (a CPU's IRQ and exception stacks).
    virtual const std::vector<StackRange>& cpu_stacks() const = 0;
    // "function+0x1c [module]" for a frame, or the hex address.
    virtual std::string describe(const Frame& f) const = 0;
    // Problems with single modules or CPUs.
    virtual const std::vector<std::string>& warnings() const = 0;
};

}  // namespace kq
