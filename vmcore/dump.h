// A kernel crash dump file: memory, VMCOREINFO and the CPUs' registers.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmcore/memory_source.h"
#include "vmcore/physical_memory.h"
#include "vmcore/registers.h"

namespace kq {

// Registers one CPU held when the dump was taken (from its NT_PRSTATUS note).
struct CpuState {
    int cpu = 0;
    uint32_t pid = 0;  // pr_pid of the note; QEMU writes the vCPU index + 1 there
    RegisterSet regs;
};

struct DumpOptions {
    // Where a converted copy may be written (flattened makedumpfile input).
    // Empty: $KQ_CACHE or ~/.cache/kquiesce.
    std::string cache_dir;
    // Called with one line of progress/information for the user.
    void (*note)(void* ctx, const std::string& line) = nullptr;
    void* note_ctx = nullptr;
    // The kernel image's symbol addresses by name. A FreeBSD full (ELF) dump
    // does not say where the kernel's page tables are; its kernel does
    // (KPML4phys, kernbase). Unset, such a dump translates no virtual address.
    std::function<std::optional<uint64_t>(std::string_view name)> kernel_symbol;
    // The file is a running kernel's /proc/kcore (vmcore/kcore.h), not a dump.
    bool kcore = false;
};

class Dump : public MemorySource, public PhysicalMemory {
public:
    // Opens ELF vmcores and kdump-compressed files, makedumpfile's
    // flattened format (converted once into the cache), and FreeBSD amd64
    // minidumps and full dumps (vmcore/freebsd_*); with opts.kcore, a
    // running kernel's /proc/kcore (vmcore/kcore.h). Throws kq::Error with
    // one clear line for anything else (not a dump, unreadable, headers or
    // notes cut off). A dump cut off only inside its memory opens with a
    // note, truncated() set, and short reads where memory is missing.
    // Thread-safe once open: reads may come from several threads.
    static std::unique_ptr<Dump> open(const std::string& path, const DumpOptions& opts = {});

    // Physical memory (PhysicalMemory): format(), read_phys(),
    // memory_ranges() (what the dump holds), to_phys() (through the dump's
    // page tables), page_size().
    virtual const std::string& vmcoreinfo() const = 0;  // raw VMCOREINFO text ("" if none)
    virtual const std::vector<CpuState>& cpus() const = 0;

    // The file holds less memory than its headers describe (cut off while
    // written or copied): reads of what is missing return short counts.
    virtual bool truncated() const { return false; }

    // Value of a VMCOREINFO line "KEY=value", e.g. "OSRELEASE", "KERNELOFFSET",
    // "SYMBOL(init_task)", "BUILD-ID".
    std::optional<std::string> vmcoreinfo_value(std::string_view key) const;
};

}  // namespace kq
