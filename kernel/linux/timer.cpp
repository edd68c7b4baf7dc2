// Provider "timers": not written yet; reported as a coverage gap.
#include "kernel/linux/providers.h"

namespace kq {

void survey_timers(const SurveyContext&, Survey& out) {
    out.coverage.push_back({"timers", "nothing", false, "not read by this version of kquiesce"});
}

}  // namespace kq
