// Linux tasks: every thread of every process, plus each CPU's idle task,
// with the registers an unwinder starts from.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "kernel/linux/linux_kernel.h"
#include "vmcore/dump.h"

namespace kq {

// The gdb-remote thread id of CPU n's idle task: idle tasks all have pid 0,
// and thread id 0 means "any thread" in the protocol. PID_MAX_LIMIT is 2^22.
constexpr int64_t kIdleThreadIdBase = 1ll << 30;

struct TaskList {
    std::vector<Thread> threads;
    std::vector<std::string> warnings;  // what could not be read
};

// Reads all tasks. cpus: registers of each CPU at dump time (empty when
// unknown); the task running on a CPU gets them instead of its switch frame.
TaskList read_tasks(const LinuxKernel& k, const std::vector<CpuState>& cpus);

// One task read anew, without CPU registers (a kernel read while it runs:
// /proc/kcore); nullopt if its task_struct is unreadable.
std::optional<Thread> read_task(const LinuxKernel& k, uint64_t task);

}  // namespace kq
