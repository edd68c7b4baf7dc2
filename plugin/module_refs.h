// The raw reference scan of a module (inuse/ref_scan) on the session's dump,
// each hit attributed to what holds it. Shared by `kmod refs` and `kmod inuse`.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <lldb/API/LLDB.h>

#include "inuse/ref_scan.h"
#include "kernel/kernel.h"

namespace kq {

class Session;

struct ModuleRef {
    uint64_t phys = 0, vaddr = 0, value = 0;
    std::string points_to;  // symbol of the value in the module
    std::string container;  // "kernel", "module", "stack", "unknown"
    std::string where;      // symbol or task holding the word ("" if unknown)
};

struct ModuleRefs {
    std::vector<ModuleRef> refs;
    RefScanResult stats;  // hits moved into refs
    size_t untranslated_pages = 0;
};

// Throws kq::Error when the dump does not say which memory it holds.
ModuleRefs find_module_refs(Session& s, lldb::SBTarget& target, const Module& m, size_t max_hits,
                            const std::function<void(const std::string&)>& say);

// "kq_notifier_nb+0x8" from LLDB's symbols of vmlinux and the loaded .ko
// files ("" if none); with_module prefixes a module's name
// ("kq_notifier`kq_notifier_nb+0x8").
std::string symbol_at(lldb::SBTarget& target, uint64_t addr, bool with_module);

}  // namespace kq
