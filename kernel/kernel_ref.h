// What an OS personality reports about the kernel's own references to code
// and data: a pending timer, a queued work item, a registered callback, an
// open file, a held lock ... Each provider (one kernel subsystem) lists every
// such reference it finds, whatever module it points to; deciding which
// module it concerns and how much it matters is inuse/'s job.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kq {

enum class RefKind : uint8_t {
    wait_queue,    // a task asleep on a wait queue head (object = the head)
    wait_entry,    // a wait queue entry whose wake function is `func`
    lock,          // a lock object that is held or has waiters (object = the lock)
    timer,         // a pending timer_list / callout
    hrtimer,       // a pending high-resolution timer
    work,          // a pending or running work item / task
    tasklet,       // a scheduled tasklet / softirq work
    irq_work,      // a queued irq_work
    rcu_callback,  // a queued RCU callback / epoch callback
    notifier,      // a callback registered on a notifier chain / event handler list
    irq_handler,   // an interrupt handler or threaded handler
    open_file,     // an open file whose operations table is `object`
    device,        // a device or kobject whose release/driver code is `func`
};
const char* to_string(RefKind k);

struct KernelRef {
    RefKind kind = RefKind::timer;
    uint64_t func = 0;     // code the kernel will run for it (0: none/unknown)
    uint64_t object = 0;   // the kernel object itself (timer_list, work_struct, lock ...)
    uint64_t data = 0;     // a further address that matters (f_op table, wait queue head ...)
    std::string subject;   // where it was found: "CPU 1 timer wheel", "task 98 kq_sleep", "reboot_notifier_list"
    std::string detail;    // "expires at jiffies 4294968000", "held by task 97 (kq_mutex)", "3 waiters"
    std::vector<int64_t> tasks;  // tasks involved (lock owner and waiters, file holders, sleepers)
};

// How far one provider got: what it covered, and what it could not read.
struct Coverage {
    std::string provider;  // "timers", "workqueues", ...
    std::string covered;   // "2/2 CPUs' timer wheels, 412 timers"
    bool complete = true;
    std::string gap;       // why not complete ("" when complete)
};

struct Survey {
    std::vector<KernelRef> refs;
    std::vector<Coverage> coverage;
};

}  // namespace kq
