#include "plugin/opened_kernel.h"

#include "plugin/session.h"
#include "plugin/stack.h"

namespace kq {

OpenedKernel::OpenedKernel(Session& s, uint64_t cpus) : s_(s), cpus_(cpus) {
    for (const auto& m : s.kernel_system().modules()) ko_found_ += !m.ko_path.empty();
    slide_ = hex_addr(s.kernel_system().slide());
}

void OpenedKernel::end_json(Json& j) const {
    auto& sys = s_.kernel_system();
    j.field("os", std::string(to_string(sys.os())))
        .field("release", sys.release())
        .field("kaslr_offset", slide_)
        .field("cpus", cpus_)
        .field("tasks", static_cast<uint64_t>(sys.threads().size()))
        .field("modules", static_cast<uint64_t>(sys.modules().size()))
        .field("ko_found", ko_found_)
        .field("ko_loaded", static_cast<uint64_t>(s_.modules_loaded()));
    j.key("warnings").begin_array();
    for (const auto& w : sys.warnings()) j.value(w);
    j.end_array().end_object();
}

std::string OpenedKernel::text(bool with_cpus) const {
    auto& sys = s_.kernel_system();
    return to_string(sys.os()) + (" " + sys.release()) + (sys.os() == KernelOs::Linux ? ", KASLR offset " + slide_ : "") + ", " +
           (with_cpus ? std::to_string(cpus_) + " CPUs, " : "") + std::to_string(sys.threads().size()) + " tasks, " +
           std::to_string(sys.modules().size()) + " modules (" + std::to_string(ko_found_) + " with a .ko, " +
           std::to_string(s_.modules_loaded()) + " loaded into LLDB)";
}

std::string OpenedKernel::warning_lines() const {
    std::string out;
    for (const auto& w : s_.kernel_system().warnings()) out += "warning: " + w + "\n";
    return out;
}

}  // namespace kq
