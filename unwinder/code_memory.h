// Memory sources for code bytes: an ELF image's file contents at its runtime
// addresses, and a layered source that prefers memory (patched alternatives,
// paravirt calls, static calls are only right there) and falls back to the file.
#pragma once
#include <cstdint>

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

// Reads `primary`; what it cannot read comes from `fallback`.
class LayeredMemory : public MemorySource {
public:
    LayeredMemory(MemorySource& primary, MemorySource& fallback) : primary_(primary), fallback_(fallback) {}
    size_t read(uint64_t vaddr, void* buf, size_t len) override;
    bool live() const override { return primary_.live(); }

private:
    MemorySource& primary_;
    MemorySource& fallback_;
};

}  // namespace kq
