#include "kernel/freebsd/survey.h"

#include "kernel/freebsd/providers.h"
#include "kernel/run_providers.h"

namespace kq {
namespace fbsd {

std::optional<int64_t> thread_id(const FreebsdSurveyContext& ctx, uint64_t td) {
    if (const Thread* t = ctx.threads.find(td)) return t->id;
    return std::nullopt;
}

std::string thread_label(const FreebsdSurveyContext& ctx, uint64_t td) {
    if (const Thread* t = ctx.threads.find(td)) return task_label(*t);
    return "thread " + addr_text(td);
}

// The lists every other provider relies on: a thread or file missing from
// them is a gap in what was looked at.
void survey_thread_list(const FreebsdSurveyContext& ctx, Survey& out) {
    Coverage c{"thread list", std::to_string(ctx.threads.threads.size()) + " threads of " +
                                  std::to_string(ctx.threads.procs) + " processes (allproc)",
               ctx.threads.complete(), ctx.threads.problems.summary()};
    out.coverage.push_back(std::move(c));
}

void survey_linker_files(const FreebsdSurveyContext& ctx, Survey& out) {
    Coverage c{"linker files", std::to_string(ctx.modules.modules.size() + 1) + " files (linker_files)",
               ctx.modules.complete(), ctx.modules.problems.summary()};
    out.coverage.push_back(std::move(c));
}

}  // namespace fbsd

const std::vector<FreebsdProviderSpec>& freebsd_providers() {
    static const std::vector<FreebsdProviderSpec> providers = {
        {"thread list", fbsd::survey_thread_list},
        {"linker files", fbsd::survey_linker_files},
        {"sleep channels", fbsd::survey_sleep_channels},
        {"locks", fbsd::survey_locks},
        {"callouts", fbsd::survey_callouts},
        {"taskqueues", fbsd::survey_taskqueues},
        {"eventhandlers", fbsd::survey_eventhandlers},
    };
    return providers;
}

Survey survey_freebsd(const FreebsdSurveyContext& ctx, const std::function<void(const std::string&)>& progress) {
    return run_providers(ctx, freebsd_providers(), progress);
}

}  // namespace kq
