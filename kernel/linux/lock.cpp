// Provider "locks": not written yet; reported as a coverage gap.
#include "kernel/linux/providers.h"

namespace kq {

void survey_locks(const SurveyContext&, Survey& out) {
    out.coverage.push_back({"locks", "nothing", false, "not read by this version of kquiesce"});
}

}  // namespace kq
