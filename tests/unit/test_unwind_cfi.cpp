// DWARF CFI of the real vmlinux against its ORC: the CFA rule at every
// instruction boundary of a sample of functions.
#include <elf.h>
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "test_unwind_support.h"
#include "unwinder/disasm.h"
#include "unwinder/dwarf_cfi.h"

using namespace kq;

TEST(UnwindCfi, MissingOrNoCfi) {
    EXPECT_THROW(DwarfCfi::open("/nonexistent/vmlinux", 0), Error);
    EXPECT_THROW(DwarfCfi::open("/dev/null", 0), Error);
}

TEST(UnwindCfiVmlinux, AgreesWithOrc) {
    KQ_REQUIRE_VMLINUX(v);
    auto cfi = DwarfCfi::open(v->image->path(), 0);
    std::printf("CFI: %zu FDEs in %s\n", cfi->fde_count(), cfi->section().c_str());
    EXPECT_GT(cfi->fde_count(), 10000u);

    const ElfSection* text = v->image->section(".text");
    std::vector<const ElfSymbol*> funcs;
    for (const auto& s : v->image->symbols())
        if (s.type == STT_FUNC && s.size >= 8 && s.shndx == text->index && s.name.find(".cold") == std::string::npos)
            funcs.push_back(&s);
    std::mt19937_64 rng(2024);
    std::shuffle(funcs.begin(), funcs.end(), rng);
    funcs.resize(std::min<size_t>(funcs.size(), 2000));

    Disassembler lin;
    size_t pcs = 0, compared = 0, agree = 0, no_cfi = 0, fn_no_cfi = 0;
    std::map<std::string, size_t> causes;
    std::vector<std::string> examples;
    for (const ElfSymbol* f : funcs) {
        if (!cfi->covers(f->value)) {
            ++fn_no_cfi;
            continue;
        }
        auto code = v->image->bytes_at(f->value, f->size);
        for (size_t off = 0; off < code.size();) {
            const cs_insn* in = lin.decode(code.subspan(off), f->value + off);
            if (!in) break;
            uint64_t pc = f->value + off;
            off += in->size;
            ++pcs;
            auto h = v->orc.find(pc);
            if (!h || h->entry.type != OrcType::call ||
                (h->entry.sp_reg != OrcReg::sp && h->entry.sp_reg != OrcReg::bp))
                continue;
            auto row = cfi->at(pc);
            if (!row) {
                ++no_cfi;
                continue;
            }
            ++compared;
            uint16_t want = h->entry.sp_reg == OrcReg::sp ? 7 : 6;
            if (row->cfa_reg == want && row->cfa_offset == h->entry.sp_offset) {
                ++agree;
                continue;
            }
            // Where they differ, what the code at pc is tells why.
            std::string cause = row->cfa_reg != want ? "different base register" : std::string("different offset");
            cause += std::string(" at ") + in->mnemonic;
            ++causes[cause];
            if (examples.size() < 15)
                examples.push_back(f->name + "+" + std::to_string(pc - f->value) + " (" + in->mnemonic + " " +
                                   in->op_str + "): orc " + h->entry.describe() + ", cfi r" +
                                   std::to_string(row->cfa_reg) + "+" + std::to_string(row->cfa_offset));
        }
    }
    double rate = compared ? static_cast<double>(agree) / compared : 0;
    std::printf("functions %zu (without an FDE %zu), pcs %zu, compared %zu, agree %zu (%.3f%%), no CFI row %zu\n",
                funcs.size(), fn_no_cfi, pcs, compared, agree, 100 * rate, no_cfi);
    for (auto& [c, n] : causes) std::printf("  disagreement: %s: %zu\n", c.c_str(), n);
    for (auto& e : examples) std::printf("    %s\n", e.c_str());
    EXPECT_GT(compared, 50000u);
    // Both come from the compiler's view of the same code (objtool checks
    // it, GCC emits .debug_frame); they differ only in how they describe
    // stack realignment (DRAP: CFI says r10, ORC still sp+8 before the
    // `and`), which is equivalent there. 99% leaves room for such spots.
    EXPECT_GE(rate, 0.99);
}
