// Control flow that only the kernel's tables know, for prologue analysis:
// static keys (jump labels: a nop or jmp patched at run time, whose target
// is reachable only through __jump_table) and exception fixups (where a
// faulting user access continues, from __ex_table). Each is an edge from a
// site to a target; the site's own fallthrough stays reachable too.
#pragma once
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "symbols/elf_image.h"
#include "vmcore/memory_source.h"

namespace kq {

class Types;

// A table entry holding two s32 references, each relative to its own
// address: struct jump_entry (code, target; then long key) and struct
// exception_table_entry (insn, fixup; then int data).
struct EdgeEntryLayout {
    unsigned size = 16;
    unsigned site = 0;
    unsigned target = 4;

    // From DWARF; throw kq::Error if the struct is missing.
    static EdgeEntryLayout jump_entry(Types& types);
    static EdgeEntryLayout exception_table_entry(Types& types);
};

class HiddenEdges {
public:
    // The entries of an image between two symbols (__start___jump_table and
    // __stop___jump_table, __start___ex_table and __stop___ex_table), moved
    // by slide. Empty if the symbols are absent.
    static HiddenEdges from_image(const ElfImage& image, uint64_t slide, const EdgeEntryLayout& l,
                                  std::string_view start_symbol, std::string_view stop_symbol);
    // A module's table in memory (struct module: jump_entries and
    // num_jump_entries, extable and num_exentries). Unreadable: empty.
    static HiddenEdges from_memory(MemorySource& mem, uint64_t table, uint64_t count, const EdgeEntryLayout& l);
    // From raw bytes: entry i at address table + i * l.size.
    static HiddenEdges from_raw(std::span<const uint8_t> bytes, uint64_t table, const EdgeEntryLayout& l);

    void merge(const HiddenEdges& o);
    // Targets of the site at addr (usually none or one).
    std::span<const std::pair<uint64_t, uint64_t>> at(uint64_t addr) const;
    size_t size() const { return sites_.size(); }

private:
    std::vector<std::pair<uint64_t, uint64_t>> sites_;  // (site, target), sorted
};

}  // namespace kq
