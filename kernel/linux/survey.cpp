#include "kernel/linux/survey.h"

#include "kernel/linux/providers.h"
#include "kernel/run_providers.h"

namespace kq {

const std::vector<ProviderSpec>& linux_providers() {
    static const std::vector<ProviderSpec> providers = {
        {"wait queues", survey_wait_queues},
        {"locks", survey_locks},
        {"timers", survey_timers},
        {"hrtimers", survey_hrtimers},
        {"workqueues", survey_workqueues},
        {"tasklets", survey_tasklets},
        {"irq_work", survey_irq_work},
        {"rcu callbacks", survey_rcu},
        {"notifiers", survey_notifiers},
        {"irq handlers", survey_irqs},
        {"open files", survey_open_files},
        {"devices", survey_devices},
    };
    return providers;
}

Survey survey_linux(const SurveyContext& ctx, const std::function<void(const std::string&)>& progress) {
    return run_providers(ctx, linux_providers(), progress);
}

}  // namespace kq
