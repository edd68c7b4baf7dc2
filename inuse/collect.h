// What the in-use analysis of a module reads from a kernel, whichever its
// OS: every thread's stack (unwound, then scanned for return addresses the
// unwind did not use) and every subsystem provider. The memory reference
// scan and naming addresses are the caller's (InuseInput's other fields).
#pragma once
#include <functional>
#include <string>

#include "inuse/report.h"
#include "kernel/kernel_system.h"
#include "unwinder/kernel_unwinder.h"

namespace kq {

// `say` (may be empty): progress lines.
InuseInput collect_inuse(const KernelSystem& sys, KernelUnwinder& unw, const Module& module,
                         const std::function<void(const std::string&)>& say = {});

}  // namespace kq
