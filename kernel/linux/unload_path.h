// Linux's module unload path as a debugger at a breakpoint sees it: the
// delete_module syscall's entry (its wrapper, called with the user's
// pt_regs), free_module (the exit function ran, the memory is not freed
// yet), what is being unloaded there, and the module state a quiesce sets.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kernel/linux/linux_kernel.h"
#include "vmcore/registers.h"

namespace kq {

class LinuxUnloadPath {
public:
    // Throws kq::Error if the kernel lacks a symbol or layout it needs.
    explicit LinuxUnloadPath(const LinuxKernel& k);

    uint64_t entry() const { return entry_; }  // __x64_sys_delete_module's first instruction
    uint64_t free() const { return free_; }    // free_module's first instruction

    // delete_module(name, flags) at entry(): `read_user` reads the calling
    // task's memory (name is a user pointer).
    struct Call {
        std::string name;  // "" if unreadable
        uint64_t flags = 0;
        bool forced() const { return flags & 01000; }  // O_TRUNC: rmmod -f
    };
    Call call_at_entry(const RegisterSet& regs,
                       const std::function<std::string(uint64_t addr, size_t max)>& read_user) const;
    // The struct module free_module() is given.
    static uint64_t module_at_free(const RegisterSet& regs) { return regs.get(Reg::rdi); }
    // Registers that make a function stopped at its first instruction
    // return `value` to its caller at once (its body never runs).
    std::vector<std::pair<Reg, uint64_t>> return_now(const RegisterSet& regs, int64_t value) const;

    // struct module's state field and its values (enum module_state).
    uint64_t state_address(uint64_t module) const { return module + state_off_; }
    int32_t live_state() const { return live_; }
    int32_t going_state() const { return going_; }

private:
    const LinuxKernel& k_;
    uint64_t entry_ = 0, free_ = 0;
    uint64_t regs_di_ = 0, regs_si_ = 0, state_off_ = 0;
    int32_t live_ = 0, going_ = 0;
};

}  // namespace kq
