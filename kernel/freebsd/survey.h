// Every FreeBSD subsystem provider run over a kernel: the references to code
// and data the kernel itself holds (sleeping threads' channels, held locks,
// pending callouts, queued tasks, event handlers), as OS-neutral KernelRefs
// for inuse/. Each provider lives in its own file of kernel/freebsd/ and is
// listed in survey.cpp.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "kernel/freebsd/freebsd_kernel.h"
#include "kernel/freebsd/linker.h"
#include "kernel/freebsd/thread.h"
#include "kernel/kernel_ref.h"

namespace kq {

struct FreebsdSurveyContext {
    const FreebsdKernel& kernel;
    const FreebsdThreads& threads;
    const FreebsdModules& modules;
};

// A provider appends what it finds to survey.refs and exactly one Coverage
// entry (named as in the table). Throwing kq::Error records the provider as
// not covered, with the message.
using FreebsdProvider = void (*)(const FreebsdSurveyContext&, Survey&);

struct FreebsdProviderSpec {
    const char* name;  // "callouts"
    FreebsdProvider run;
};

// Every provider, in the order they run.
const std::vector<FreebsdProviderSpec>& freebsd_providers();

// Runs them all; `progress` (may be empty) gets each provider's name first.
Survey survey_freebsd(const FreebsdSurveyContext& ctx, const std::function<void(const std::string&)>& progress = {});

}  // namespace kq
