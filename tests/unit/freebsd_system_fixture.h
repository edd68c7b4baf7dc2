// The FreeBSD fixture opened as kquiesce opens a FreeBSD kernel: a
// FreebsdSystem over either dump form of a scenario, and the in-use report
// of a module built as `kmod inuse` builds it (every thread unwound and
// scanned, every provider, analyze()).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "freebsd_fixture.h"
#include "inuse/collect.h"
#include "inuse/report.h"
#include "kernel/freebsd/freebsd_system.h"
#include "kernel/freebsd/symbolizer.h"
#include "unwinder/freebsd_unwind.h"

namespace kq::fbsdtest {

inline std::string dump_path(const std::string& scenario, const std::string& form) {
    return form == "minidump" ? minidump_path(scenario) : elf_path(scenario);
}

inline FreebsdOpenOptions open_options() {
    FreebsdOpenOptions o;
    o.modules_dirs = {kDir};
    return o;
}

// Opened once per (scenario, form) for the whole test program.
inline FreebsdSystem& fbsd_system(const std::string& scenario, const std::string& form) {
    static std::map<std::string, std::unique_ptr<FreebsdSystem>> open;
    auto& s = open[scenario + "/" + form];
    if (!s) s = FreebsdSystem::open_dump(kernel_path(), dump_path(scenario, form), open_options());
    return *s;
}

// A dump's memory with some bytes replaced (only where the dump has them).
class PatchedMemory : public MemorySource {
public:
    explicit PatchedMemory(MemorySource& base) : base_(base) {}
    void put_u64(uint64_t a, uint64_t v) { put_bytes(a, &v, 8); }
    void put_bytes(uint64_t a, const void* p, size_t n) {
        for (size_t i = 0; i < n; ++i) patch_[a + i] = static_cast<const uint8_t*>(p)[i];
    }
    size_t read(uint64_t vaddr, void* buf, size_t len) override {
        const size_t n = base_.read(vaddr, buf, len);
        for (auto it = patch_.lower_bound(vaddr); it != patch_.end() && it->first < vaddr + n; ++it)
            static_cast<uint8_t*>(buf)[it->first - vaddr] = it->second;
        return n;
    }

private:
    MemorySource& base_;
    std::map<uint64_t, uint8_t> patch_;
};

// kmod inuse over a system: stacks, survey, report.
inline Report inuse_report(FreebsdSystem& sys, const Module& m) {
    FreebsdUnwinder unw(sys.kernel(), sys.modules());
    FreebsdSymbolizer names(sys.image(), sys.modules());
    InuseInput in = collect_inuse(sys, unw, m);
    in.symbolize = [&](uint64_t a) { return names.name(a); };
    return analyze(in);
}

}  // namespace kq::fbsdtest
