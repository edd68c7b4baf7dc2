// The kernel's e820 table (x86): the firmware's map of physical memory as
// the kernel keeps it, the memory a live kernel has where no dump says.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "symbols/types.h"
#include "vmcore/memory_source.h"

namespace kq {

// The RAM of the struct e820_table at `table`: entries of type
// E820_TYPE_RAM, and E820_TYPE_RESERVED_KERN (RAM holding boot data the
// kernel keeps) where the kernel has that type; sorted, adjacent ones
// merged, [start, end). Layouts and types from DWARF. Throws kq::Error when
// the table cannot be read or holds no RAM.
std::vector<std::pair<uint64_t, uint64_t>> e820_ram(MemorySource& mem, Types& types, uint64_t table);

}  // namespace kq
