// Where the kernel's module loader puts a .ko's sections in the module's
// core allocation: the offsets a vanished module's addresses are matched
// against (crash_attribution), as Linux 6.1's layout_sections() lays them
// out.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "symbols/elf_image.h"

namespace kq {

struct KoLayout {
    std::map<unsigned, uint64_t> offset;  // section index -> offset from the allocation's base
    uint64_t text_size = 0;               // executable part, page-aligned (STRICT_MODULE_RWX)
    uint64_t size = 0;                    // every placed section, page-aligned (no symbol tables)
    // The section and offset within it of an offset from the base; false if
    // no placed section holds it.
    bool section_at(const ElfImage& ko, uint64_t off, unsigned& shndx, uint64_t& in_section) const;
};

// The core (non-init) layout: allocated sections in four groups (code,
// read-only data, data made read-only after init, writable data), each in
// section-index order at its alignment, each group starting on a page.
// Sections whose name starts with ".init" go to the init allocation and are
// not placed; .modinfo and __versions are not allocated by the loader.
KoLayout ko_core_layout(const ElfImage& ko, uint64_t page_size = 4096);

}  // namespace kq
