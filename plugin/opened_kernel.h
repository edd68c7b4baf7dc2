// What `kmod core` and `kmod attach` say about the kernel they opened: one
// summary for both, as JSON fields or as text.
#pragma once
#include <cstdint>
#include <string>

#include "plugin/json.h"

namespace kq {

class Session;

struct OpenedKernel {
    explicit OpenedKernel(Session& s, uint64_t cpus);

    // "os", "release" ... "warnings", then closes the object `j` holds open.
    void end_json(Json& j) const;
    // "Linux R, KASLR offset O, [N CPUs, ]T tasks, M modules (...)"; FreeBSD
    // has no KASLR offset, and its threads are called tasks too.
    std::string text(bool with_cpus) const;
    // One "warning: ..." line each.
    std::string warning_lines() const;

private:
    Session& s_;
    uint64_t cpus_, ko_found_ = 0;
    std::string slide_;
};

}  // namespace kq
