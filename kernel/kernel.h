// What every OS personality must answer: its threads and its modules.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vmcore/memory_source.h"
#include "vmcore/registers.h"

namespace kq {

struct Thread {
    int64_t id = 0;          // Linux: pid (thread id); 0 for the idle tasks
    uint64_t task = 0;       // address of the OS thread object (task_struct, struct thread)
    std::string name;        // comm / td_name
    std::string state;       // "R", "S", "D", "I" ... as the kernel reports it
    int cpu = -1;            // CPU it runs on (on_cpu) or last ran on
    bool on_cpu = false;     // registers are the CPU's, not a saved switch frame
    bool kernel_thread = false;
    RegisterSet regs;        // initial registers for unwinding
    uint64_t stack_base = 0; // lowest address of the kernel stack
    uint64_t stack_size = 0;
    // On a CPU of a live kernel read without its CPUs' registers
    // (/proc/kcore): no registers, so no frames. `whereabouts` says why it
    // is known to run no module code ("" when it is not known).
    bool regs_unknown = false;
    std::string whereabouts;
};

// "task 109 (kq_sleep)": how reports name a thread.
inline std::string task_label(const Thread& t) { return "task " + std::to_string(t.id) + " (" + t.name + ")"; }

struct ModuleSection {
    std::string name;  // ".text", ".data", ".bss", ".rodata.str1.1" ...
    uint64_t addr = 0;
};

struct Range {
    uint64_t start = 0, size = 0;
    std::string what;  // "text", "rodata", "data", "init text" ...
    bool contains(uint64_t a) const { return a - start < size; }
};

struct Module {
    std::string name;
    uint64_t addr = 0;              // struct module
    std::string state;              // "Live", "Coming", "Going", "Unformed"
    int64_t refcount = 0;
    std::vector<Range> ranges;      // where its memory is (from struct module)
    std::vector<ModuleSection> sections;  // from sect_attrs
    std::vector<std::string> holders;     // modules that use it (source_list)
    std::string ko_path;            // .ko used for symbols, "" if not found
    bool contains(uint64_t a) const {
        for (const auto& r : ranges) if (r.contains(a)) return true;
        return false;
    }
};

}  // namespace kq
