// An opened kernel as the OS-neutral commands see it, whichever the OS: its
// memory, threads and modules, and every reference its subsystems hold
// (LinuxSystem and FreebsdSystem implement it). What only one OS has stays
// on that OS's class.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "kernel/kernel_os.h"
#include "kernel/kernel_ref.h"
#include "vmcore/dump.h"

namespace kq {

class KernelSystem {
public:
    virtual ~KernelSystem() = default;

    virtual KernelOs os() const = 0;
    // "6.1.0-21-amd64", "14.1-RELEASE".
    virtual const std::string& release() const = 0;
    // The kernel image (vmlinux, kernel.debug) and how far it was moved
    // from its link address (Linux's KASLR; 0 elsewhere).
    virtual const ElfImage& image() const = 0;
    virtual uint64_t slide() const = 0;
    // Where the loaded kernel image lies at runtime addresses: physically
    // contiguous in both OSes. Empty when the kernel does not say.
    virtual Range image_range() const = 0;
    // Virtual address of physical address 0 in the kernel's direct map, 0
    // when not known.
    virtual uint64_t direct_map_base() const = 0;
    virtual size_t cpu_count() const = 0;

    virtual bool is_dump() const = 0;
    // The dump file; throws kq::Error on a live kernel, which has none.
    virtual Dump& dump() = 0;
    // Physical memory: the dump's, or a live kernel's. Throws kq::Error
    // when there is none to read.
    virtual PhysicalMemory& physical() = 0;
    virtual MemorySource& memory() = 0;

    virtual const std::vector<Thread>& threads() const = 0;
    virtual const std::vector<Module>& modules() const = 0;
    // By name; nullptr if no such module is loaded.
    virtual const Module* module(const std::string& name) const = 0;
    // What could not be read: partial results say so here.
    virtual std::vector<std::string> warnings() const = 0;
    // A kernel read while it runs (/proc/kcore): the thread read anew, as a
    // task that ran since its switch frame was read unwinds into garbage.
    // nullopt where memory holds still (dumps, a stopped kernel).
    virtual std::optional<Thread> reread_thread(const Thread&) const { return std::nullopt; }

    // Every subsystem provider over this kernel; `progress` (may be empty)
    // gets each provider's name first.
    virtual Survey survey(const std::function<void(const std::string&)>& progress) const = 0;
};

}  // namespace kq
