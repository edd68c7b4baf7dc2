// The FreeBSD personality's view of one kernel image (kernel.debug) in one
// memory source: symbols, DWARF layouts, CPUs and per-CPU data.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "symbols/elf_image.h"
#include "symbols/types.h"
#include "vmcore/memory_source.h"

namespace kq {

// FreeBSD amd64's page size (PAGE_SIZE): kernel stacks are counted in pages.
constexpr uint64_t kFreebsdPageSize = 4096;

class FreebsdKernel {
public:
    // The kernel image is not relocated (FreeBSD amd64 has no kernel ASLR):
    // its symbols are runtime addresses.
    FreebsdKernel(MemorySource& mem, const ElfImage& image, Types& types);

    MemorySource& mem() const { return mem_; }
    Types& types() const { return types_; }
    const ElfImage& image() const { return image_; }

    // Address of a kernel symbol; throws kq::Error if absent.
    uint64_t symbol(std::string_view name) const;
    std::optional<uint64_t> find_symbol(std::string_view name) const;

    // Offset of a DWARF member; throws kq::Error when missing.
    uint64_t off(std::string_view type, std::string_view member) const {
        return types_.offset_or_throw(type, member);
    }

    // An integer member of the object at `obj`, sign-extended from its DWARF
    // size (1, 2, 4 or 8 bytes): members such as td_oncpu changed width
    // between releases. nullopt if unreadable; throws if not in DWARF.
    std::optional<int64_t> read_int(uint64_t obj, std::string_view type, std::string_view member) const;
    // A pointer member; nullopt if unreadable.
    std::optional<uint64_t> read_ptr(uint64_t obj, std::string_view type, std::string_view member) const {
        return mem_.read_u64(obj + off(type, member));
    }
    // A char array member, or the string a char* member points to.
    std::string read_name(uint64_t obj, std::string_view type, std::string_view member) const;
    std::string read_cstr(uint64_t a, size_t max = 256) const { return mem_.read_cstr(a, max); }
    uint64_t read_u64_or_throw(uint64_t a, std::string_view what) const;

    // The version string in memory (`version`), and the image's own copy.
    std::string version() const;
    std::string image_version() const;
    // Throws kq::Error naming both when the image is not the kernel in memory.
    void check_version() const;

    // The CPUs present: 0..mp_maxid whose struct pcpu exists
    // (cpuid_to_pcpu[]). Without those symbols, CPU 0 alone.
    const std::vector<int>& cpus() const;
    // CPU n's struct pcpu (0 if unknown).
    uint64_t pcpu(int cpu) const;
    // CPU n's copy of a DPCPU_DEFINE'd variable: its set_pcpu address plus
    // dpcpu_off[n]. Throws kq::Error without the symbols.
    uint64_t dpcpu(std::string_view symbol_name, int cpu) const;

private:
    MemorySource& mem_;
    const ElfImage& image_;
    Types& types_;
    mutable std::optional<std::vector<int>> cpus_;
};

}  // namespace kq
