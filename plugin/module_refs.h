// The raw reference scan of a module (inuse/ref_scan) on the session's
// physical memory (a dump's, or a live kernel's), each hit attributed to
// what holds it. Shared by `kmod refs` and `kmod inuse`.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <lldb/API/LLDB.h>

#include "inuse/ref_scan.h"
#include "kernel/kernel.h"

namespace kq {

class LinuxSystem;
class Session;

// What a word found by the scan says about the module's use.
enum class RefWeight {
    evidence,     // live kernel data holds it
    advisory,     // it may be stale: a free slab object, a free page, memory nobody is known to own
    bookkeeping,  // the kernel's own record of the loaded module (module_bookkeeping.h): no use
};
const char* to_string(RefWeight w);

struct ModuleRef {
    uint64_t phys = 0, vaddr = 0, value = 0;
    std::string points_to;  // symbol of the value in the module
    // "kernel", "percpu", "module", "stack", "slab", "page", "bookkeeping", "unknown"
    std::string container;
    // Symbol, "SYMBOL+0xOFF (CPU n)", task, "CACHE object 0x... +0xOFF",
    // page kind or bookkeeping record holding the word ("" if unknown).
    std::string where;
    RefWeight weight = RefWeight::evidence;
};

struct ModuleRefs {
    std::vector<ModuleRef> refs;
    RefScanResult stats;  // hits moved into refs
    size_t untranslated_pages = 0;
    std::vector<std::string> bookkeeping_problems;  // records not identified: their words stay evidence
    size_t count(RefWeight w) const;
};

// On a Linux kernel the slab allocator, per-CPU data and the kernel's
// records of the module name what holds each word; on another a plain scan
// names only the kernel image, modules and stacks. Throws kq::Error when the
// memory does not say which physical memory there is.
ModuleRefs find_module_refs(Session& s, lldb::SBTarget& target, const Module& m, size_t max_hits,
                            const std::function<void(const std::string&)>& say);

// "timer_bases+0x9c8 (CPU 1)" for an address in a CPU's copy of the
// kernel's per-CPU data, "" otherwise.
std::string per_cpu_name(LinuxSystem& sys, uint64_t vaddr);

// "kq_notifier_nb+0x8" from LLDB's symbols of vmlinux and the loaded .ko
// files ("" if none); with_module prefixes a module's name
// ("kq_notifier`kq_notifier_nb+0x8").
std::string symbol_at(lldb::SBTarget& target, uint64_t addr, bool with_module);

}  // namespace kq
