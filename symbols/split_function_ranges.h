// Functions that GCC splits into a hot part `f` and a cold part `f.cold`
// (placed megabytes away in .text.unlikely) carry a DWARF range list with
// both parts. LLDB 16 takes the span from the lowest to the highest address
// as the function's range; its x86 unwinder then "augments" the CFI over
// that whole span, inserting rows one by one (quadratic in megabytes of
// code: LLDB hangs), and reuses that span for every function inside it.
//
// This file rewrites such range lists so the function DIE covers only its
// hot part, in a copy of the file that LLDB reads as the module's symbol
// file. Lines and variables of the cold part stay in the lexical blocks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kq {

class ElfImage;

struct SplitFunction {
    uint64_t hot = 0;   // address of f
    uint64_t cold = 0;  // address of f.cold
};

// The split functions of an image, from its symbol table.
std::vector<SplitFunction> split_functions(const ElfImage& img);

// Rewrites, in a DWARF 5 .debug_rnglists section, each list that holds an
// entry starting at a function's hot address and one starting at its cold
// address: every cold entry becomes an empty range at the hot address (same
// encoded size). Returns the number of entries rewritten. Throws kq::Error
// on a malformed section.
size_t collapse_cold_ranges(std::span<uint8_t> rnglists, const std::vector<SplitFunction>& fns);

// Writes `out_path` (through a temporary file and a rename): a copy of the
// image's file with its cold ranges collapsed. Returns the entries
// rewritten; 0 means no copy was needed and none was written.
size_t write_collapsed_copy(const ElfImage& img, const std::string& out_path);

}  // namespace kq
