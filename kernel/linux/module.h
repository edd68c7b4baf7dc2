// Linux loaded modules from the kernel's `modules` list.
#pragma once
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "kernel/linux/linux_kernel.h"

namespace kq {

struct ModuleList {
    std::vector<Module> modules;
    std::vector<std::string> warnings;
};

// Reads every module: name, state, refcount, memory ranges (core and init
// layouts), section addresses (sect_attrs) and holders (source_list).
// ko_path is left empty: finding the .ko is ko_locator's job.
ModuleList read_modules(const LinuxKernel& k);

}  // namespace kq
