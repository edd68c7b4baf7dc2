// One frame of an unwound kernel stack, and how it was found.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kq {

// How a frame's pc and sp were recovered from the frame above it.
enum class UnwindMethod : uint8_t {
    initial,        // the thread's own registers (on-CPU or saved switch frame)
    orc,            // the kernel's ORC tables (vmlinux or module)
    dwarf_cfi,      // .debug_frame / .eh_frame
    frame_pointer,  // rbp chain
    prologue,       // Capstone analysis of the function's code up to the pc
    stack_scan,     // first validated return address above sp
};
const char* to_string(UnwindMethod m);

enum class Confidence : uint8_t {
    low,     // found by scanning, or by a method that had to guess
    medium,  // unwind data or code analysis, return address not confirmed
    high,    // unwind data, and the return address follows a call instruction
};
const char* to_string(Confidence c);

// Why the unwind of a thread ended. Only the last frame carries one.
enum class StopReason : uint8_t {
    none,              // not the last frame
    end_of_stack,      // ORC end entry (ret_from_fork, startup code): the base
    user_mode,         // crossed into user mode (syscall or interrupt entry): the base
    max_frames,        // frame limit reached
    no_unwind_info,    // no method could find the caller
    unreadable,        // a stack word the unwind needed is not in the dump
    sp_outside_stack,  // sp is on no stack of this thread
    sp_not_increasing, // the caller's sp is not above the callee's on the same stack
    stack_revisited,   // came back to a stack already left (cycle across stacks)
    bad_pc,            // the caller's pc is not kernel code
    bad_unwind_info,   // the unwind data makes no sense (unknown register, type)
};
const char* to_string(StopReason r);
// The base of the stack was reached: the unwind is complete.
inline bool is_base(StopReason r) { return r == StopReason::end_of_stack || r == StopReason::user_mode; }

// What Capstone says about a frame's return address (and the call before it).
enum class ReturnCheck : uint8_t {
    none,            // not a return address (initial pc of a CPU, pc from a pt_regs)
    not_after_call,  // no call instruction ends there
    indirect_call,   // an indirect call (target unknown)
    call_to_callee,  // a direct call to the function of the frame above
    call_to_thunk,   // a direct call to a thunk (retpoline, ftrace)
    call_elsewhere,  // a direct call to another function (a tail call from it, or a stale word)
};
const char* to_string(ReturnCheck c);

// Which stack a frame's sp lies on.
enum class StackKind : uint8_t { unknown, task, irq, exception };
const char* to_string(StackKind k);

struct Frame {
    uint64_t pc = 0;
    uint64_t sp = 0;   // rsp while executing at pc
    uint64_t cfa = 0;  // the caller's sp after this frame returns (0: not known)
    UnwindMethod method = UnwindMethod::initial;
    Confidence confidence = Confidence::high;
    // pc is a return address (symbolize pc-1); false for the initial pc of a
    // CPU and for pcs taken from a pt_regs (interrupted, exact).
    bool return_address = false;
    ReturnCheck check = ReturnCheck::none;
    StackKind stack = StackKind::unknown;
    // Last frame only: why the unwind stopped after it, and details.
    StopReason stop = StopReason::none;
    std::string stop_detail;

    // "stop: <why>" text of the last frame ("" for the others).
    std::string stop_text() const;
    // The address to symbolize: pc-1 for return addresses.
    uint64_t lookup_pc() const { return return_address ? pc - 1 : pc; }
};

// An address as the unwinder's texts show it, as printf's %#llx.
std::string hex_text(uint64_t v);

// True when the unwind reached the base of the stack.
inline bool reached_base(const std::vector<Frame>& frames) {
    return !frames.empty() && is_base(frames.back().stop);
}

}  // namespace kq
