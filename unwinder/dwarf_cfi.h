// DWARF call frame information (.debug_frame, else .eh_frame) of an ELF
// image, through libdwarf: for a pc, where the CFA is, where the return
// address and the caller's rbp were saved. The unwinder uses it where there
// is no ORC (kernels built without ORC, code ORC does not cover).
//
// Not thread-safe (libdwarf state): one per thread.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace kq {

// x86-64 DWARF register numbers.
enum class DwarfReg : uint16_t { rax = 0, rdx = 1, rcx = 2, rbx = 3, rsi = 4, rdi = 5, rbp = 6, rsp = 7, ra = 16 };

struct CfiRow {
    uint16_t cfa_reg = 7;   // CFA = cfa_reg + cfa_offset (DWARF number)
    int64_t cfa_offset = 8;
    // The return address is saved at CFA + ra_offset (nullopt: undefined,
    // the outermost frame).
    std::optional<int64_t> ra_offset;
    enum class Bp : uint8_t { same, undefined, saved, other } bp = Bp::same;
    int64_t bp_offset = 0;  // saved at CFA + bp_offset
    uint64_t row_pc = 0;    // where this row starts
};

class DwarfCfi {
public:
    // Throws kq::Error if the file cannot be read or has no CFI. Addresses
    // are moved by `slide` (ET_EXEC/ET_DYN; an ET_REL .ko is not supported).
    static std::unique_ptr<DwarfCfi> open(const std::string& path, uint64_t slide);
    virtual ~DwarfCfi() = default;

    // The row for pc; nullopt if no FDE covers it or the CFA is a DWARF
    // expression.
    virtual std::optional<CfiRow> at(uint64_t pc) = 0;
    // Does an FDE cover pc.
    virtual bool covers(uint64_t pc) = 0;
    virtual size_t fde_count() const = 0;
    virtual const std::string& section() const = 0;  // ".debug_frame" or ".eh_frame"
};

}  // namespace kq
