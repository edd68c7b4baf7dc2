// Waiters that live on a sleeping task's stack (wait queue entries, mutex
// and rwsem waiters) and the lists they hang on: shared by the wait queue
// and lock providers; defined in waitqueue.cpp.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "kernel/kernel_ref.h"
#include "kernel/linux/linux_kernel.h"

namespace kq {

namespace stack_wait {
bool is_sleeping(const Thread& t);
std::optional<std::vector<uint64_t>> stack_waiters(MemorySource& mem, const Thread& t, uint64_t task_off,
                                                   uint64_t list_off);
uint64_t ring_head(MemorySource& mem, uint64_t node, const std::function<bool(uint64_t)>& is_entry,
                   std::vector<uint64_t>& entries, std::string& problem);
std::function<bool(uint64_t)> on_own_stack(MemorySource& mem, const std::vector<Thread>& threads, uint64_t task_off,
                                           uint64_t list_off);
Range kernel_text(const LinuxKernel& k);
Coverage stack_coverage(const char* provider, const std::string& covered, const std::vector<std::string>& unreadable,
                        const std::string& what, const std::vector<std::string>& unresolved);
}  // namespace stack_wait

}  // namespace kq
