// The kernel's ORC unwind tables (x86-64): decoding, sorting, lookup.
//
// A table is two arrays of equal length: ips (s32, each relative to its own
// address) and entries (struct orc_entry). The entry of the last ip <= pc
// describes pc. vmlinux holds them in .orc_unwind_ip / .orc_unwind; a module
// holds them in its memory, pointed to by struct module's arch.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "symbols/elf_image.h"
#include "vmcore/memory_source.h"

namespace kq {

class Types;

// Where the members of struct orc_entry are. Byte offsets and the size can
// come from DWARF; the bitfields' bit positions need a bitfield-aware Types
// (not there yet), so the caller passes them.
struct OrcLayout {
    struct Bits {
        unsigned bit = 0;   // from the start of the entry, little-endian order
        unsigned width = 0; // 0: member absent
    };
    unsigned size = 6;
    unsigned sp_offset = 0;  // byte offset of s16 sp_offset
    unsigned bp_offset = 2;  // byte offset of s16 bp_offset
    Bits sp_reg, bp_reg, type, end, signal;
    // v4.14..v6.3: type:2 (0 CALL, 1 REGS, 2 REGS_PARTIAL) and end:1.
    // v6.4+: type:3 (0 UNDEFINED, 1 END_OF_STACK, 2 CALL, 3 REGS, 4 REGS_PARTIAL) and signal:1.
    bool typed_end() const { return end.width == 0; }

    // struct orc_entry as x86-64 kernels v4.14 to v6.3 lay it out
    // (sp_offset, bp_offset, sp_reg:4, bp_reg:4, type:2, end:1).
    static OrcLayout x86_64_end_bit();
    // v6.4 and later (sp_reg:4, bp_reg:4, type:3, signal:1).
    static OrcLayout x86_64_signal_bit();
    // Byte offsets and size from DWARF, bit positions from `bits` (whose
    // byte-level values are replaced). Throws kq::Error if struct orc_entry
    // is missing.
    static OrcLayout from_types(Types& types, const OrcLayout& bits);
};

// ORC_REG_* (arch/x86/include/asm/orc_types.h).
enum class OrcReg : uint8_t {
    undefined = 0, prev_sp = 1, dx = 2, di = 3, bp = 4, sp = 5, r10 = 6, r13 = 7,
    bp_indirect = 8, sp_indirect = 9,
};
const char* to_string(OrcReg r);

enum class OrcType : uint8_t {
    undefined,     // no unwind information for this ip (sp_reg undefined, not end)
    end_of_stack,  // the base: ret_from_fork, entry code, startup code
    call,          // ordinary frame: return address at CFA-8
    regs,          // a full struct pt_regs at CFA
    regs_partial,  // an iret frame at CFA (pt_regs ending at CFA+iret size)
};
const char* to_string(OrcType t);

struct OrcEntry {
    int16_t sp_offset = 0;
    int16_t bp_offset = 0;
    OrcReg sp_reg = OrcReg::undefined;
    OrcReg bp_reg = OrcReg::undefined;
    OrcType type = OrcType::undefined;
    bool signal = false;  // ip is exact (interrupted), not a return address
    uint8_t raw_type = 0;

    std::string describe() const;  // "sp:sp+8 bp:undef type:call"
};

// Decodes one raw entry. nullopt if the layout does not fit the bytes.
std::optional<OrcEntry> decode_orc_entry(const OrcLayout& l, std::span<const uint8_t> raw);

class OrcTable {
public:
    OrcTable() = default;

    // vmlinux: .orc_unwind_ip and .orc_unwind from the file, every ip moved
    // by `slide`. `text` limits which pcs the table answers for (runtime
    // ranges); empty means the executable sections of the image. Throws
    // kq::Error if the sections are missing or their sizes disagree.
    static OrcTable from_image(const ElfImage& image, uint64_t slide, const OrcLayout& layout);

    // From raw arrays: ip_bytes[4*i] is the s32 of entry i, whose own address
    // is ip_table + 4*i. Sorts if needed. Throws kq::Error on size mismatch.
    static OrcTable from_raw(std::span<const uint8_t> ip_bytes, uint64_t ip_table,
                             std::span<const uint8_t> entry_bytes, const OrcLayout& layout,
                             std::vector<std::pair<uint64_t, uint64_t>> text, std::string name);

    // A module's table in memory (struct module's arch: num_orcs,
    // orc_unwind_ip, orc_unwind). `text`: the module's executable ranges.
    // Throws kq::Error if unreadable or implausible.
    static OrcTable from_memory(MemorySource& mem, uint64_t ip_table, uint64_t entries, uint64_t count,
                                const OrcLayout& layout, std::vector<std::pair<uint64_t, uint64_t>> text,
                                std::string name);

    // The entry describing `ip` (already adjusted: ip-1 for return
    // addresses), with the address it starts at. nullopt if ip is outside
    // this table's text or before its first entry.
    struct Hit {
        OrcEntry entry;
        uint64_t ip = 0;  // start of the range the entry covers
        size_t index = 0;
    };
    std::optional<Hit> find(uint64_t ip) const;

    bool covers(uint64_t ip) const;
    size_t size() const { return ips_.size(); }
    uint64_t ip(size_t i) const { return ips_[i]; }
    const OrcEntry& entry(size_t i) const { return entries_[i]; }
    const std::string& name() const { return name_; }
    bool was_sorted() const { return was_sorted_; }
    const OrcLayout& layout() const { return layout_; }

private:
    std::vector<uint64_t> ips_;
    std::vector<OrcEntry> entries_;
    std::vector<std::pair<uint64_t, uint64_t>> text_;  // sorted [start, end)
    std::string name_;
    OrcLayout layout_;
    bool was_sorted_ = true;
};

// vmlinux's table plus one per module: finds the right one for a pc.
class OrcIndex {
public:
    void add(OrcTable t);
    std::optional<OrcTable::Hit> find(uint64_t ip, const OrcTable** table = nullptr) const;
    bool covers(uint64_t ip) const;
    const std::vector<OrcTable>& tables() const { return tables_; }

private:
    std::vector<OrcTable> tables_;
};

// How well a layout explains a table: of the function symbols that have an
// ORC entry starting exactly at their first byte, the fraction whose entry
// says "CFA = sp+8, type call" (every C function's entry state). A wrong
// bitfield layout scores near 0; the right one near 1.
double orc_layout_score(const OrcTable& t, const ElfImage& image, uint64_t slide, size_t max_functions = 2000);

}  // namespace kq
