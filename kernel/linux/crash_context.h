// The context of a crash in a Linux dump: whether the kernel panicked, on
// which CPU and task, the oops as the kernel logged it, the exception's
// saved registers (the pt_regs of the fault, found on the crashing stack)
// and the faulting address.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "kernel/linux/linux_kernel.h"
#include "kernel/linux/printk.h"
#include "unwinder/frame.h"

namespace kq {

// The last oops of the kernel log (the one before the panic, if any), from
// its standard lines (arch/x86/mm/fault.c, kernel/panic.c, dumpstack).
struct OopsLog {
    bool found = false;
    std::string bug;          // "BUG: unable to handle page fault for address: ffffffffc037e000"
    std::optional<uint64_t> address;  // from that line, else the "CR2:" summary after the module list
    std::string access;       // "instruction fetch", "read access", "write access" ("#PF: supervisor ...")
    std::string oops;         // "Oops: 0010 [#1] PREEMPT SMP NOPTI"
    int cpu = -1;             // "CPU: 1 PID: 0 Comm: swapper/1 Tainted: ..."
    int64_t pid = -1;
    std::string comm;
    std::string rip;          // "0010:0xffffffffc037e000", "0010:kq_null_deref_set+0xc/0x1f [kq_null_deref]"
    std::string workqueue;    // "events 0xffffffffc042b000"
    std::string modules;      // "qemu_fw_cfg [last unloaded: kq_leaky_timer(OE)]"
    std::string last_unloaded;  // "kq_leaky_timer" from "[last unloaded: ...]"
    std::string panic;        // "Fatal exception in interrupt" ("Kernel panic - not syncing: ...")
    std::vector<std::string> lines;  // the oops's records, from its first line to the panic's end
};

OopsLog parse_oops(const KernelLog& log);

struct CrashContext {
    bool panicked = false;         // panic_cpu holds a CPU
    int panic_cpu = -1;
    std::string last_unloaded_module;  // the kernel's own record ("" if none or unreadable)
    std::string taint;             // tainted_mask as letters ("G R OE" style: one letter per set flag)
    std::optional<Thread> task;    // the task current on panic_cpu (the oops's CPU without a panic)
    OopsLog oops;
    // The exception's pt_regs (0: not found) and the registers it holds.
    uint64_t regs_addr = 0;
    RegisterSet regs;
    size_t regs_frame = 0;         // index of the unwound frame whose pc came from them
    std::optional<uint64_t> fault_address;
    std::string fault_address_source;  // "log", "pt_regs ip (unmapped: an instruction fetch)"
    std::vector<std::string> notes;    // what could not be read
};

// panic_cpu, last_unloaded_module, tainted_mask, the oops of `log` (may be
// null), and the task on the crashing CPU among `threads`.
CrashContext read_crash_context(const LinuxKernel& k, const std::vector<Thread>& threads, const KernelLog* log);

// The oops pt_regs among `frames` (the unwind of c.task): the first frame
// after the first whose pc was taken from a pt_regs, that pt_regs found on
// the stack between it and the frame before. When the unwind ended at the
// exception entry (the saved pc is no kernel text: the fault was a call or
// return into freed memory), the first plausible kernel-mode pt_regs above
// the last frame, and regs_frame is frames.size(): the caller unwinds on
// from those registers. Fills regs, regs_addr, regs_frame and, if the log
// gave none, the faulting address. False if there is none.
bool locate_exception_regs(const LinuxKernel& k, const std::vector<Frame>& frames, CrashContext& c);

}  // namespace kq
