// A task's stack as the kmod commands show it: the project's own unwind
// (unwinder/), each frame named and attributed to the kernel image or a module.
#pragma once
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "plugin/json.h"
#include "kernel/kernel_system.h"
#include "unwinder/frame.h"
#include "unwinder/kernel_unwinder.h"

namespace kq {

struct StackFrame {
    Frame frame;
    std::string symbol;  // "" if unknown
    uint64_t offset = 0;
    std::string module;  // "vmlinux" (FreeBSD: "kernel"), a module's name, or "" if not kernel text
};

struct Stack {
    std::vector<StackFrame> frames;
    bool complete = false;  // reached the base of the stack
};

Stack stack_of(const KernelSystem& sys, KernelUnwinder& unw, const Thread& t);

// A validated return address into a module found by scanning the task's
// stacks, not one of its unwound frames: advisory evidence (a frame the
// unwind missed, or a stale word left by a call that returned).
struct ScanWord {
    StackWord word;
    std::string symbol;
    uint64_t offset = 0;
    std::string module;
};
// Scan words into `module` (any module when empty).
std::vector<ScanWord> scan_of(const KernelSystem& sys, KernelUnwinder& unw, const Thread& t, const Stack& st,
                              const std::string& module);
void scan_json(Json& j, const ScanWord& w);
std::string scan_line(const ScanWord& w);

// One JSON object per frame (index, pc, sp, symbol, offset, module, method,
// confidence, return check, stack, and `in_module` for `mark`).
void frame_json(Json& j, size_t index, const StackFrame& f, const std::string& mark);
// "#3  0xffffffffc0601060 kq_sleep_wait+0x40 [kq_sleep]  orc/high".
std::string frame_line(size_t index, const StackFrame& f, bool marked, bool show_method);

std::string hex_addr(uint64_t v);

}  // namespace kq
