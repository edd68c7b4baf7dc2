// Running a kernel's in-use providers in order, whatever the OS: each
// appends its references and exactly one Coverage entry; one that throws
// kq::Error, or says nothing of its coverage, is recorded as not covered.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "kernel/kernel_ref.h"
#include "vmcore/memory_source.h"  // kq::Error

namespace kq {

// Spec: {const char* name; void (*run)(const Context&, Survey&);}.
template <class Context, class Spec>
Survey run_providers(const Context& ctx, const std::vector<Spec>& providers,
                     const std::function<void(const std::string&)>& progress) {
    Survey s;
    for (const auto& p : providers) {
        if (progress) progress(p.name);
        const size_t before = s.coverage.size();
        try {
            p.run(ctx, s);
        } catch (const Error& e) {
            s.coverage.resize(before);
            s.coverage.push_back({p.name, "stopped", false, e.what()});
            continue;
        }
        if (s.coverage.size() == before) s.coverage.push_back({p.name, "?", false, "the provider reported no coverage"});
    }
    return s;
}

}  // namespace kq
