// One reason a module is (or may be) in use, and how much it matters
// (severities, kinds and verdicts as docs/json.md documents them).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kq {

enum class Severity : uint8_t {
    blocking,           // freeing the module now leaves the kernel a live path into freed memory
    refused_by_kernel,  // the kernel's own accounting refuses a normal unload
    advisory,           // may be stale (scanned stack words, raw memory references)
};
const char* to_string(Severity s);

struct Evidence {
    std::string kind;       // "thread_pc", "thread_frame", "stack_word", "refcount", "holder",
                            // "module_state", or a RefKind name ("timer", "notifier" ...)
    Severity severity = Severity::blocking;
    std::string subject;    // the task, CPU or kernel list where it was found
    uint64_t address = 0;   // the address inside the module (code or data)
    std::string symbol;     // its name: "kq_sleep_wait+0x40" ("" if unknown)
    uint64_t object = 0;    // the kernel object holding the reference (0: none)
    std::string detail;
    std::vector<int64_t> tasks;  // tasks involved
};

enum class Verdict : uint8_t {
    safe,     // nothing blocking or refused, and coverage complete
    busy,     // only refused-by-kernel: a normal unload fails, a forced one may proceed
    unsafe,   // blocking evidence: even a forced unload would endanger the kernel
    unknown,  // coverage incomplete and nothing blocking found
};
const char* to_string(Verdict v);

}  // namespace kq
