// Which module a crash belongs to, and how the kernel got there. An unload
// crash is one whose faulting pc or address lies in a hole of the module
// area (MODULES_VADDR..MODULES_END) where no live module is mapped: the
// kernel called, returned or reached into a module that is gone. The
// vanished module is named by the kernel's records (last_unloaded_module,
// the log's lines) and identified by matching the stale addresses against
// candidate .ko files laid out as the kernel lays out modules; the path
// (timer, work, thread, callback) comes from the caller of the stale code
// and the object it was handed.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "kernel/linux/crash_context.h"
#include "kernel/linux/linux_kernel.h"
#include "kernel/linux/printk.h"
#include "unwinder/frame.h"

namespace kq {

// An address into a hole of the module area, and what it should be in the
// module that was there.
struct StaleRef {
    std::string what;   // "fault pc", "timer_list.function", "register r12", "stack word" ...
    uint64_t value = 0;
    uint64_t where = 0;  // where it was read (0: a register, the log)
    enum class Expect : uint8_t {
        function_entry,  // a call target: the start of a function
        return_address,  // just after a call instruction
        code,            // inside a function
        any,             // inside the module's memory
    } expect = Expect::any;
    std::string explained;  // by the matched .ko: "kq_leaky_timer_fn+0x0", ".bss+0x8"; "" if not
};
const char* to_string(StaleRef::Expect e);

struct CrashPath {
    std::string kind;         // "timer", "work", "thread", "callback"; "" if not known
    std::string caller;       // the kernel function that made the call: "call_timer_fn+0x27"
    uint64_t object = 0;      // the timer_list, work_struct, task or notifier_block
    std::string object_type;  // "timer_list", "work_struct", "delayed_work", "kthread", "notifier_block"
    uint64_t function = 0;    // the stale function pointer the object holds
    std::string chain;        // notifier chain that still holds the block
    std::string missing_cleanup;  // "del_timer_sync", "cancel_delayed_work_sync", "kthread_stop", "unregister_reboot_notifier"
    std::string detail;
};

struct KoMatch {
    std::string module, ko_path;
    uint64_t base = 0, size = 0;  // the load base found and the module's core size from the .ko
    size_t explained = 0, total = 0, exact = 0;  // refs explained, all refs, exact checks passed
    size_t alternatives = 0;      // other bases of this .ko that explain as many
};

struct Attribution {
    // unload: the fault pc or address is in a hole of the module area;
    // loaded_module: the pc is in a live module; kernel: elsewhere;
    // no_crash: no panic and no oops.
    enum class Kind : uint8_t { unload, loaded_module, kernel, no_crash } kind = Kind::kernel;
    uint64_t area_start = 0, area_end = 0;  // MODULES_VADDR, MODULES_END
    uint64_t hole_start = 0, hole_end = 0;  // the hole holding the stale address
    std::string module;                     // the vanished (or, loaded_module, live) module; "" if unknown
    std::vector<std::string> module_sources;  // "last_unloaded_module", "oops module list", "log", "ko match"
    std::vector<std::string> log_lines;     // the log's records of that module
    std::string function;                   // function of the fault pc in that module ("" if unknown)
    uint64_t offset = 0;
    std::string confidence;                 // "high", "medium", "low"
    std::optional<KoMatch> match;
    size_t candidates_tried = 0;
    std::vector<std::string> searched;      // where .ko files were looked for
    std::vector<StaleRef> stale;
    CrashPath path;
    std::vector<std::string> still_registered;  // kernel references into the hole still in place
    std::vector<std::string> notes;
};
const char* to_string(Attribution::Kind k);

struct AttributionInput {
    const LinuxKernel& kernel;
    const std::vector<Module>& modules;  // the live ones
    const std::vector<Thread>& threads;
    const CrashContext& context;
    const std::vector<Frame>& frames;    // unwind of the crashing task
    const KernelLog* log = nullptr;
    std::vector<std::string> ko_dirs;    // searched first for candidate .ko files
    std::string release;
};

Attribution attribute_crash(const AttributionInput& in);

}  // namespace kq
