// A kernel crash dump file: memory, VMCOREINFO and the CPUs' registers.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vmcore/memory_source.h"
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
};

class Dump : public MemorySource {
public:
    // Opens ELF vmcores and kdump-compressed files, and makedumpfile's
    // flattened format (converted once into the cache). Throws kq::Error with
    // one clear line for anything else (truncated, not a dump, unreadable).
    static std::unique_ptr<Dump> open(const std::string& path, const DumpOptions& opts = {});

    virtual std::string format() const = 0;          // "ELF", "kdump-compressed", ...
    virtual const std::string& vmcoreinfo() const = 0;  // raw VMCOREINFO text ("" if none)
    virtual const std::vector<CpuState>& cpus() const = 0;
    virtual size_t read_phys(uint64_t paddr, void* buf, size_t len) = 0;

    // Value of a VMCOREINFO line "KEY=value", e.g. "OSRELEASE", "KERNELOFFSET",
    // "SYMBOL(init_task)", "BUILD-ID".
    std::optional<std::string> vmcoreinfo_value(std::string_view key) const;
};

}  // namespace kq
