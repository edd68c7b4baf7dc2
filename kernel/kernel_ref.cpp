#include "kernel/kernel_ref.h"

namespace kq {

const char* to_string(RefKind k) {
    switch (k) {
        case RefKind::wait_queue: return "wait_queue";
        case RefKind::wait_entry: return "wait_entry";
        case RefKind::lock: return "lock";
        case RefKind::timer: return "timer";
        case RefKind::hrtimer: return "hrtimer";
        case RefKind::work: return "work";
        case RefKind::tasklet: return "tasklet";
        case RefKind::irq_work: return "irq_work";
        case RefKind::rcu_callback: return "rcu_callback";
        case RefKind::notifier: return "notifier";
        case RefKind::irq_handler: return "irq_handler";
        case RefKind::open_file: return "open_file";
        case RefKind::device: return "device";
    }
    return "?";
}

}  // namespace kq
