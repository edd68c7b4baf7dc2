// Provider "wait queues": not written yet; reported as a coverage gap.
#include "kernel/linux/providers.h"

namespace kq {

void survey_wait_queues(const SurveyContext&, Survey& out) {
    out.coverage.push_back({"wait queues", "nothing", false, "not read by this version of kquiesce"});
}

}  // namespace kq
