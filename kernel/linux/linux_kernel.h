// The Linux personality's view of one kernel image in one memory source:
// symbols (with the KASLR offset applied), DWARF layouts, per-CPU data.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/kernel.h"
#include "symbols/elf_image.h"
#include "symbols/types.h"
#include "vmcore/memory_source.h"

namespace kq {

class LinuxKernel {
public:
    // slide: runtime address minus link-time address of the kernel image
    // (VMCOREINFO's KERNELOFFSET on a dump).
    LinuxKernel(MemorySource& mem, const ElfImage& vmlinux, Types& types, uint64_t slide);

    MemorySource& mem() const { return mem_; }
    Types& types() const { return types_; }
    const ElfImage& vmlinux() const { return vmlinux_; }
    uint64_t slide() const { return slide_; }

    // Runtime address of a vmlinux symbol; throws kq::Error if absent.
    uint64_t symbol(std::string_view name) const;
    std::optional<uint64_t> find_symbol(std::string_view name) const;

    // Offsets of DWARF members, throwing kq::Error when missing.
    uint64_t off(std::string_view type, std::string_view member) const {
        return types_.offset_or_throw(type, member);
    }

    // Verifies that this vmlinux is the kernel in memory: its linux_banner
    // must read back identically. Throws kq::Error naming both banners.
    void check_banner() const;
    std::string banner() const;     // as in memory
    std::string release() const;    // init_uts_ns.name.release

    // CPUs the kernel knows (nr_cpu_ids) and their per-CPU offsets.
    int nr_cpus() const;
    // Where the direct map of physical memory starts (page_offset_base,
    // randomized with KASLR); 0 if unreadable. Throws kq::Error without
    // the symbol.
    uint64_t direct_map_base() const;
    uint64_t per_cpu(std::string_view symbol_name, int cpu) const;

    std::optional<uint64_t> read_u64(uint64_t a) const { return mem_.read_u64(a); }
    uint64_t read_u64_or_throw(uint64_t a, std::string_view what) const;

private:
    MemorySource& mem_;
    const ElfImage& vmlinux_;
    Types& types_;
    uint64_t slide_;
    mutable int nr_cpus_ = -1;
};

}  // namespace kq
