#include "kernel/linux/unload_path.h"

namespace kq {

LinuxUnloadPath::LinuxUnloadPath(const LinuxKernel& k) : k_(k) {
    // The syscall wrapper, not __do_sys_delete_module: GCC splits that one
    // (a .cold part) and may inline it; the wrapper is always a function of
    // its own, entered by a call or a tail jump from the syscall table.
    entry_ = k.symbol("__x64_sys_delete_module");
    free_ = k.symbol("free_module");
    regs_di_ = k.off("pt_regs", "di");
    regs_si_ = k.off("pt_regs", "si");
    state_off_ = k.off("module", "state");
    auto live = k.types().enumerator("MODULE_STATE_LIVE");
    auto going = k.types().enumerator("MODULE_STATE_GOING");
    if (!live || !going) throw Error("this kernel's DWARF has no enum module_state");
    live_ = static_cast<int32_t>(*live);
    going_ = static_cast<int32_t>(*going);
}

LinuxUnloadPath::Call LinuxUnloadPath::call_at_entry(
    const RegisterSet& regs, const std::function<std::string(uint64_t, size_t)>& read_user) const {
    Call c;
    const uint64_t user_regs = regs.get(Reg::rdi);
    const auto name = k_.read_u64(user_regs + regs_di_);
    c.flags = k_.read_u64(user_regs + regs_si_).value_or(0);
    if (name) c.name = read_user(*name, 56);  // MODULE_NAME_LEN is 64 - sizeof(unsigned long)
    return c;
}

std::vector<std::pair<Reg, uint64_t>> LinuxUnloadPath::return_now(const RegisterSet& regs, int64_t value) const {
    const uint64_t sp = regs.get(Reg::rsp);
    const uint64_t ret = k_.read_u64_or_throw(sp, "the return address at the function's entry");
    return {{Reg::rax, static_cast<uint64_t>(value)}, {Reg::rip, ret}, {Reg::rsp, sp + 8}};
}

}  // namespace kq
