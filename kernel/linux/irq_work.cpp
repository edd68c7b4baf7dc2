// Provider "irq_work": not written yet; reported as a coverage gap.
#include "kernel/linux/providers.h"

namespace kq {

void survey_irq_work(const SurveyContext&, Survey& out) {
    out.coverage.push_back({"irq_work", "nothing", false, "not read by this version of kquiesce"});
}

}  // namespace kq
