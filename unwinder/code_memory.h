// Memory sources for code bytes: an ELF image's file contents at its runtime
// addresses, and a layered source that prefers memory (patched alternatives,
// paravirt calls, static calls are only right there) and falls back to the file.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "symbols/elf_image.h"
#include "vmcore/memory_source.h"

namespace kq {

// The allocated sections of an ET_EXEC image (vmlinux) with file contents,
// moved by `slide`.
class ImageMemory : public MemorySource {
public:
    ImageMemory(const ElfImage& image, uint64_t slide) : image_(image), slide_(slide) {}
    size_t read(uint64_t vaddr, void* buf, size_t len) override;

private:
    const ElfImage& image_;
    uint64_t slide_;
};

// Reads `primary`; what it cannot read comes from `fallback`. Within the
// ranges given to prefer_fallback() the order is reversed: vmlinux's init
// text is freed after boot, and return addresses into it (the idle task's
// start_kernel) must be checked against the code that ran, the file's.
class LayeredMemory : public MemorySource {
public:
    LayeredMemory(MemorySource& primary, MemorySource& fallback) : primary_(primary), fallback_(fallback) {}
    size_t read(uint64_t vaddr, void* buf, size_t len) override;
    bool live() const override { return primary_.live(); }

    // [start, end) ranges read from the fallback first.
    void prefer_fallback(std::vector<std::pair<uint64_t, uint64_t>> ranges) { fallback_first_ = std::move(ranges); }

private:
    size_t read_ordered(MemorySource& first, MemorySource& second, uint64_t vaddr, void* buf, size_t len);

    MemorySource& primary_;
    MemorySource& fallback_;
    std::vector<std::pair<uint64_t, uint64_t>> fallback_first_;
};

}  // namespace kq
