// Capstone, wrapped: one handle per Disassembler (RAII), x86-64, detail only
// when asked for. Decodes one instruction at a time, no allocation per call.
#pragma once
#include <capstone/capstone.h>

#include <cstdint>
#include <optional>
#include <span>

#include "vmcore/memory_source.h"

namespace kq {

class CodeMap;

class Disassembler {
public:
    // detail: fill cs_insn::detail (operands), needed by prologue analysis.
    // Throws kq::Error if Capstone cannot be opened.
    explicit Disassembler(bool detail = false);
    ~Disassembler();
    Disassembler(const Disassembler&) = delete;
    Disassembler& operator=(const Disassembler&) = delete;
    Disassembler(Disassembler&& o) noexcept;
    Disassembler& operator=(Disassembler&& o) noexcept;

    // Decodes the first instruction of code[] as if it were at addr. The
    // result is valid until the next call; nullptr if the bytes do not
    // decode.
    const cs_insn* decode(std::span<const uint8_t> code, uint64_t addr);

    csh handle() const { return h_; }
    bool detail() const { return detail_; }

private:
    csh h_ = 0;
    cs_insn* insn_ = nullptr;
    bool detail_ = false;
};

// A call instruction found immediately before a return address.
struct CallSite {
    uint64_t addr = 0;     // first byte of the call
    uint8_t length = 0;    // ends exactly at the return address
    bool direct = false;   // call rel32 (target known)
    uint64_t target = 0;   // direct calls only
};

// Longest call encoding tried (prefixes + ff /2 with SIB and disp32).
constexpr size_t kMaxCallLength = 10;

// The call instruction that ends exactly at ret_addr, given the bytes just
// before it: before[before.size()-1] is the byte at ret_addr-1. Tries the
// direct form (e8 rel32) first, then indirect forms (ff /2) of every length;
// where several fit, a longer one only if its extra bytes change the operand
// (a REX prefix does, a bnd prefix does not). When `code` is given, a direct
// call counts only if its target is kernel text.
std::optional<CallSite> call_ending_at(Disassembler& d, std::span<const uint8_t> before, uint64_t ret_addr,
                                       const CodeMap* code = nullptr);

// The same, reading the bytes from memory (a short read just limits which
// lengths can be tried).
std::optional<CallSite> call_ending_at(Disassembler& d, MemorySource& mem, uint64_t ret_addr,
                                       const CodeMap* code = nullptr);

}  // namespace kq
