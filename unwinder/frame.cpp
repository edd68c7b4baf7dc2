#include "unwinder/frame.h"

#include <charconv>

namespace kq {

const char* to_string(UnwindMethod m) {
    switch (m) {
        case UnwindMethod::initial: return "initial";
        case UnwindMethod::orc: return "orc";
        case UnwindMethod::dwarf_cfi: return "dwarf_cfi";
        case UnwindMethod::frame_pointer: return "frame_pointer";
        case UnwindMethod::prologue: return "prologue";
        case UnwindMethod::stack_scan: return "stack_scan";
    }
    return "?";
}

const char* to_string(Confidence c) {
    switch (c) {
        case Confidence::low: return "low";
        case Confidence::medium: return "medium";
        case Confidence::high: return "high";
    }
    return "?";
}

const char* to_string(StopReason r) {
    switch (r) {
        case StopReason::none: return "none";
        case StopReason::end_of_stack: return "end of stack";
        case StopReason::user_mode: return "user mode";
        case StopReason::max_frames: return "frame limit";
        case StopReason::no_unwind_info: return "no unwind information";
        case StopReason::unreadable: return "unreadable stack";
        case StopReason::sp_outside_stack: return "sp outside the stack";
        case StopReason::sp_not_increasing: return "sp not increasing";
        case StopReason::stack_revisited: return "stack entered twice";
        case StopReason::bad_pc: return "pc not in kernel text";
        case StopReason::bad_unwind_info: return "bad unwind information";
    }
    return "?";
}

const char* to_string(ReturnCheck c) {
    switch (c) {
        case ReturnCheck::none: return "none";
        case ReturnCheck::not_after_call: return "not after a call";
        case ReturnCheck::indirect_call: return "indirect call";
        case ReturnCheck::call_to_callee: return "call to callee";
        case ReturnCheck::call_to_thunk: return "call to thunk";
        case ReturnCheck::call_elsewhere: return "call elsewhere";
    }
    return "?";
}

const char* to_string(StackKind k) {
    switch (k) {
        case StackKind::unknown: return "unknown";
        case StackKind::task: return "task";
        case StackKind::irq: return "irq";
        case StackKind::exception: return "exception";
    }
    return "?";
}

// Without printf: it names the stop of every unwind.
std::string hex_text(uint64_t v) {
    if (!v) return "0";
    char b[24] = {'0', 'x'};
    return std::string(b, std::to_chars(b + 2, b + sizeof b, v, 16).ptr);
}

std::string Frame::stop_text() const {
    if (stop == StopReason::none) return {};
    std::string s = std::string("stop: ") + to_string(stop);
    if (!stop_detail.empty()) s += " (" + stop_detail + ")";
    return s;
}

}  // namespace kq
