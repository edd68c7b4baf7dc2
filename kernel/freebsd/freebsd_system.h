// A FreeBSD kernel opened for analysis: a dump (or any memory source) and
// the kernel.debug that matches it, with the threads and modules read from
// it and the .ko files found for the modules.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernel/freebsd/freebsd_kernel.h"
#include "kernel/freebsd/linker.h"
#include "kernel/freebsd/survey.h"
#include "kernel/freebsd/thread.h"
#include "kernel/kernel_system.h"
#include "vmcore/dump.h"

namespace kq {

struct FreebsdOpenOptions {
    // Searched first for each module's file (kq_fbsd.ko, or kq_fbsd.ko.debug);
    // then /usr/lib/debug/<its path>.debug and its path as the kernel
    // recorded it.
    std::vector<std::string> modules_dirs;
    std::function<void(const std::string&)> progress;  // one line per step
};

class FreebsdSystem : public KernelSystem {
public:
    // Opens a FreeBSD minidump or full dump with its kernel.debug: checks
    // that the dump is FreeBSD's and that the image's version string is the
    // one in memory, reads threads and modules, finds .ko files. Throws
    // kq::Error with one line on any unusable input.
    static std::unique_ptr<FreebsdSystem> open_dump(const std::string& kernel, const std::string& dump,
                                                    const FreebsdOpenOptions& opts);
    // The same over memory the caller keeps alive (a live kernel behind a
    // GDB stub, a test's memory).
    static std::unique_ptr<FreebsdSystem> open_memory(MemorySource& mem, const std::string& kernel,
                                                      const FreebsdOpenOptions& opts);
    ~FreebsdSystem();

    KernelOs os() const override { return KernelOs::FreeBSD; }
    bool is_dump() const override { return dump_ != nullptr; }
    // The dump file; throws kq::Error when opened over other memory.
    Dump& dump() override;
    PhysicalMemory& physical() override { return dump(); }
    MemorySource& memory() override { return *mem_; }
    const ElfImage& image() const override { return *image_; }
    uint64_t slide() const override { return 0; }  // no kernel ASLR on amd64
    // The kernel's linker file (linker_kernel_file): its address and size.
    Range image_range() const override;
    // Not known: the kernel has the direct map's bounds as constants.
    uint64_t direct_map_base() const override { return 0; }
    size_t cpu_count() const override { return kernel_->cpus().size(); }
    FreebsdKernel& kernel() { return *kernel_; }
    const std::vector<Thread>& threads() const override { return threads_.threads; }
    const std::vector<Module>& modules() const override { return modules_.modules; }
    const FreebsdThreads& thread_list() const { return threads_; }
    const FreebsdModules& module_list() const { return modules_; }
    // By its name ("kq_fbsd"), its file's ("kq_fbsd.ko") or a module its file
    // declares; nullptr if none.
    const Module* module(const std::string& name) const override { return modules_.find(name); }
    // What could not be read: partial results say so here.
    std::vector<std::string> warnings() const override;
    // osrelease: "14.1-RELEASE".
    const std::string& release() const override { return release_; }

    // Every subsystem provider over this kernel.
    Survey survey(const std::function<void(const std::string&)>& progress = {}) const override;

private:
    FreebsdSystem() = default;
    void read(const FreebsdOpenOptions& opts);

    std::unique_ptr<ElfImage> image_;  // before dump_: the dump's symbol look-ups use it
    std::unique_ptr<Dump> dump_;
    MemorySource* mem_ = nullptr;
    std::unique_ptr<Types> types_;
    std::unique_ptr<FreebsdKernel> kernel_;
    FreebsdThreads threads_;
    FreebsdModules modules_;
    std::string release_;
};

// The file to read a module's symbols from: in each of `dirs` the file's
// name (then with ".debug"), then /usr/lib/debug/<pathname>.debug, then
// `pathname`; "" if none exists.
std::string find_ko(const std::vector<std::string>& dirs, const LinkerFileInfo& file);

}  // namespace kq
