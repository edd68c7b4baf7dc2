// A Linux kernel opened for analysis: a dump and the vmlinux that matches
// it, with the tasks and modules read from it.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernel/linux/ko_locator.h"
#include "kernel/linux/linux_kernel.h"
#include "kernel/linux/module.h"
#include "kernel/linux/task.h"
#include "vmcore/dump.h"

namespace kq {

struct OpenOptions {
    std::vector<std::string> modules_dirs;  // searched first for .ko files
    std::function<void(const std::string&)> progress;  // one line per step
};

class LinuxSystem {
public:
    // Opens the dump, checks it belongs to vmlinux (OSRELEASE, banner),
    // applies KASLR from VMCOREINFO, reads tasks and modules, finds .ko
    // files. Throws kq::Error with one line on any unusable input.
    static std::unique_ptr<LinuxSystem> open_dump(const std::string& vmlinux, const std::string& dump,
                                                  const OpenOptions& opts);

    Dump& dump() { return *dump_; }
    const ElfImage& vmlinux() const { return *vmlinux_; }
    LinuxKernel& kernel() { return *kernel_; }
    const std::vector<Thread>& threads() const { return tasks_.threads; }
    const std::vector<Module>& modules() const { return modules_.modules; }
    const Module* module(const std::string& name) const;
    // What could not be read: partial results say so here.
    std::vector<std::string> warnings() const;
    const std::string& release() const { return release_; }

private:
    std::unique_ptr<Dump> dump_;
    std::unique_ptr<ElfImage> vmlinux_;
    std::unique_ptr<Types> types_;
    std::unique_ptr<LinuxKernel> kernel_;
    TaskList tasks_;
    ModuleList modules_;
    std::string release_;
};

}  // namespace kq
