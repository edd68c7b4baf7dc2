// Provider "devices": not written yet; reported as a coverage gap.
#include "kernel/linux/providers.h"

namespace kq {

void survey_devices(const SurveyContext&, Survey& out) {
    out.coverage.push_back({"devices", "nothing", false, "not read by this version of kquiesce"});
}

}  // namespace kq
