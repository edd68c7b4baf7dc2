// A Linux kernel opened for analysis: a dump (or a live kernel's memory)
// and the vmlinux that matches it, with the tasks and modules read from it.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernel/linux/ko_locator.h"
#include "kernel/linux/linux_kernel.h"
#include "kernel/linux/live_physical.h"
#include "kernel/linux/module.h"
#include "kernel/linux/task.h"
#include "kernel/kernel_system.h"
#include "vmcore/dump.h"

namespace kq {

struct OpenOptions {
    std::vector<std::string> modules_dirs;  // searched first for .ko files
    std::function<void(const std::string&)> progress;  // one line per step
    // The "dump" is the running kernel's /proc/kcore (vmcore/kcore.h): its
    // memory changes as it is read, and it holds no CPU's registers.
    bool kcore = false;
};

class LinuxSystem : public KernelSystem {
public:
    // Opens the dump, checks it belongs to vmlinux (OSRELEASE, banner),
    // applies KASLR from VMCOREINFO, reads tasks and modules, finds .ko
    // files. Throws kq::Error with one line on any unusable input.
    static std::unique_ptr<LinuxSystem> open_dump(const std::string& vmlinux, const std::string& dump,
                                                  const OpenOptions& opts);

    // A running kernel's memory (a GDB stub's; `mem` must outlive the
    // system). vcpus: each virtual CPU's registers in the stub's order (cpu
    // = its index). The KASLR offset is found as the one at which vmlinux's
    // linux_banner reads back from memory: offsets that put a CPU's program
    // counter inside the kernel's text first, then every step of the
    // randomization range. Then as open_dump. Throws kq::Error.
    static std::unique_ptr<LinuxSystem> open_live(const std::string& vmlinux, MemorySource& mem,
                                                  const std::vector<CpuState>& vcpus, const OpenOptions& opts);
    // A live kernel ran and stopped again (or, through /proc/kcore, ran on):
    // its tasks and modules, read anew.
    void reread(const std::vector<CpuState>& vcpus);
    // The kernel's CPU number of each virtual CPU: the one whose per-CPU
    // base is the vCPU's GS base, else the vCPU's index.
    std::vector<int> cpu_of_vcpus(const std::vector<CpuState>& vcpus) const;

    KernelOs os() const override { return KernelOs::Linux; }
    bool is_dump() const override { return dump_ != nullptr; }
    // The dump file; throws kq::Error on a live kernel, which has none.
    Dump& dump() override;
    // Physical memory: the dump's, or a live kernel's through its direct map
    // (found at the first call). Throws kq::Error when a live kernel's
    // cannot be found.
    PhysicalMemory& physical() override;
    MemorySource& memory() override { return *mem_; }
    const ElfImage& vmlinux() const { return *vmlinux_; }
    const ElfImage& image() const override { return *vmlinux_; }
    uint64_t slide() const override { return kernel_->slide(); }
    Range image_range() const override;  // _text to _end
    uint64_t direct_map_base() const override { return kernel_->direct_map_base(); }
    // The dump's CPU notes; a live kernel's (or /proc/kcore's) nr_cpu_ids.
    size_t cpu_count() const override;
    LinuxKernel& kernel() { return *kernel_; }
    const std::vector<Thread>& threads() const override { return tasks_.threads; }
    const std::vector<Module>& modules() const override { return modules_.modules; }
    const Module* module(const std::string& name) const override;
    // What could not be read: partial results say so here.
    std::vector<std::string> warnings() const override;
    std::optional<Thread> reread_thread(const Thread& t) const override;
    const std::string& release() const override { return release_; }
    Survey survey(const std::function<void(const std::string&)>& progress) const override;

private:
    void read_all(const std::vector<CpuState>& cpus);
    std::vector<CpuState> by_cpu(const std::vector<CpuState>& vcpus) const;

    std::unique_ptr<Dump> dump_;
    std::unique_ptr<LivePhysical> live_physical_;
    MemorySource* mem_ = nullptr;  // the dump, or a live kernel's memory
    std::vector<std::string> modules_dirs_;
    std::unique_ptr<ElfImage> vmlinux_;
    std::unique_ptr<Types> types_;
    std::unique_ptr<LinuxKernel> kernel_;
    TaskList tasks_;
    ModuleList modules_;
    std::string release_;
};

}  // namespace kq
