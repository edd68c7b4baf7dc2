// Every Linux subsystem provider run over a kernel: the references to code
// and data that the kernel itself holds (pending timers, queued work,
// registered callbacks, open files, held locks ...). Each provider lives in
// its own file of kernel/linux/ and is listed in survey.cpp.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "kernel/kernel_ref.h"
#include "kernel/linux/linux_kernel.h"

namespace kq {

struct SurveyContext {
    const LinuxKernel& kernel;
    const std::vector<Thread>& threads;
    const std::vector<Module>& modules;
};

// A provider appends what it finds to survey.refs and exactly one Coverage
// entry (named as in the table) saying what it covered. Throwing kq::Error
// records the provider as not covered, with the message.
using SurveyProvider = void (*)(const SurveyContext&, Survey&);

struct ProviderSpec {
    const char* name;    // "timers"
    SurveyProvider run;
};

// Every provider, in the order they run.
const std::vector<ProviderSpec>& linux_providers();

// Runs them all; `progress` (may be empty) gets each provider's name first.
Survey survey_linux(const SurveyContext& ctx, const std::function<void(const std::string&)>& progress = {});

}  // namespace kq
