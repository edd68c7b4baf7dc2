// x86-64 register state of a CPU or of a task's saved context.
#pragma once
#include <cstdint>

namespace kq {

// Order of the kernel's struct user_regs_struct, which is also the layout of
// pr_reg in an ELF NT_PRSTATUS note.
enum class Reg : unsigned {
    r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi,
    orig_rax, rip, cs, eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs,
    count
};

struct RegisterSet {
    uint64_t value[static_cast<unsigned>(Reg::count)] = {};
    uint32_t known = 0;  // bit i set: value[i] is known

    uint64_t get(Reg r) const { return value[static_cast<unsigned>(r)]; }
    bool has(Reg r) const { return known & (1u << static_cast<unsigned>(r)); }
    void set(Reg r, uint64_t v) {
        value[static_cast<unsigned>(r)] = v;
        known |= 1u << static_cast<unsigned>(r);
    }
};

}  // namespace kq
