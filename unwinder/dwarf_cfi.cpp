#include "unwinder/dwarf_cfi.h"

#include <libdwarf/libdwarf.h>

#include <algorithm>
#include <vector>

#include "symbols/dwarf_object.h"
#include "vmcore/memory_source.h"

namespace kq {
namespace {

class LibdwarfCfi : public DwarfCfi {
public:
    LibdwarfCfi(const std::string& path, uint64_t slide) : slide_(slide), obj_(path) {
        Dwarf_Error err = nullptr;
        obj_.open();
        dbg_ = obj_.dbg();
        // Registers no rule mentions keep their value (callee-saved rbp in
        // functions that never touch it).
        dwarf_set_frame_rule_initial_value(dbg_, DW_FRAME_SAME_VAL);
        int res = dwarf_get_fde_list(dbg_, &cies_, &ncies_, &fdes_, &nfdes_, &err);
        section_ = ".debug_frame";
        if (res != DW_DLV_OK) {
            if (err) dwarf_dealloc_error(dbg_, err), err = nullptr;
            res = dwarf_get_fde_list_eh(dbg_, &cies_, &ncies_, &fdes_, &nfdes_, &err);
            section_ = ".eh_frame";
        }
        if (res != DW_DLV_OK) {
            if (err) dwarf_dealloc_error(dbg_, err);
            throw Error(path + " has no call frame information (.debug_frame, .eh_frame)");
        }
        // Our own index of FDE ranges, sorted, for covers() and the lookup.
        for (Dwarf_Signed i = 0; i < nfdes_; ++i) {
            Dwarf_Addr lo = 0;
            Dwarf_Unsigned len = 0;
            if (dwarf_get_fde_range(fdes_[i], &lo, &len, nullptr, nullptr, nullptr, nullptr, nullptr, &err) ==
                    DW_DLV_OK &&
                len)
                ranges_.push_back({lo, lo + len, static_cast<size_t>(i)});
            else if (err)
                dwarf_dealloc_error(dbg_, err), err = nullptr;
        }
        std::sort(ranges_.begin(), ranges_.end(), [](auto& a, auto& b) { return a.lo < b.lo; });
    }

    ~LibdwarfCfi() override {
        if (dbg_) {
            if (fdes_ || cies_) dwarf_fde_cie_list_dealloc(dbg_, cies_, ncies_, fdes_, nfdes_);
        }
    }

    bool covers(uint64_t pc) override { return find(pc - slide_) != nullptr; }
    size_t fde_count() const override { return ranges_.size(); }
    const std::string& section() const override { return section_; }

    std::optional<CfiRow> at(uint64_t pc) override {
        uint64_t a = pc - slide_;
        const Range* r = find(a);
        if (!r) return std::nullopt;
        Dwarf_Fde fde = fdes_[r->index];
        Dwarf_Error err = nullptr;
        Dwarf_Small vt = 0;
        Dwarf_Signed rel = 0, reg = 0, off = 0;
        Dwarf_Ptr block = nullptr;
        Dwarf_Addr row_pc = 0, next_pc = 0;
        Dwarf_Bool more = 0;
        if (dwarf_get_fde_info_for_cfa_reg3_b(fde, a, &vt, &rel, &reg, &off, &block, &row_pc, &more, &next_pc,
                                              &err) != DW_DLV_OK) {
            if (err) dwarf_dealloc_error(dbg_, err);
            return std::nullopt;
        }
        if (vt != DW_EXPR_OFFSET && vt != DW_EXPR_VAL_OFFSET) return std::nullopt;  // an expression
        CfiRow row;
        row.cfa_reg = static_cast<uint16_t>(reg);
        row.cfa_offset = off;
        row.row_pc = row_pc + slide_;
        auto column = [&](uint16_t col, CfiRow::Bp& kind, int64_t& offset) {
            Dwarf_Small t = 0;
            Dwarf_Signed r2 = 0, rg = 0, o2 = 0;
            Dwarf_Ptr b2 = nullptr;
            Dwarf_Addr rp = 0, np = 0;
            Dwarf_Bool m2 = 0;
            if (dwarf_get_fde_info_for_reg3_b(fde, col, a, &t, &r2, &rg, &o2, &b2, &rp, &m2, &np, &err) !=
                DW_DLV_OK) {
                if (err) dwarf_dealloc_error(dbg_, err), err = nullptr;
                kind = CfiRow::Bp::other;
                return;
            }
            if (rg == DW_FRAME_SAME_VAL) kind = CfiRow::Bp::same;
            else if (rg == DW_FRAME_UNDEFINED_VAL) kind = CfiRow::Bp::undefined;
            else if (t == DW_EXPR_OFFSET && r2 && rg == DW_FRAME_CFA_COL3) kind = CfiRow::Bp::saved, offset = o2;
            else kind = CfiRow::Bp::other;
        };
        CfiRow::Bp ra_kind;
        int64_t ra_off = 0;
        column(static_cast<uint16_t>(DwarfReg::ra), ra_kind, ra_off);
        if (ra_kind == CfiRow::Bp::saved) row.ra_offset = ra_off;
        column(static_cast<uint16_t>(DwarfReg::rbp), row.bp, row.bp_offset);
        return row;
    }

private:
    struct Range {
        uint64_t lo, hi;
        size_t index;
    };
    const Range* find(uint64_t a) const {
        auto it = std::upper_bound(ranges_.begin(), ranges_.end(), a, [](uint64_t x, const Range& r) { return x < r.lo; });
        if (it == ranges_.begin()) return nullptr;
        --it;
        return a < it->hi ? &*it : nullptr;
    }

    uint64_t slide_;
    DwarfObject obj_;  // first: finished after the FDE lists are freed
    Dwarf_Debug dbg_ = nullptr;
    Dwarf_Cie* cies_ = nullptr;
    Dwarf_Fde* fdes_ = nullptr;
    Dwarf_Signed ncies_ = 0, nfdes_ = 0;
    std::vector<Range> ranges_;
    std::string section_;
};

}  // namespace

std::unique_ptr<DwarfCfi> DwarfCfi::open(const std::string& path, uint64_t slide) {
    return std::make_unique<LibdwarfCfi>(path, slide);
}

}  // namespace kq
