#include "unwinder/prologue.h"

#include <algorithm>

namespace kq {
namespace {

bool is_sp(unsigned r) { return r == X86_REG_RSP || r == X86_REG_ESP || r == X86_REG_SP || r == X86_REG_SPL; }
bool is_bp(unsigned r) { return r == X86_REG_RBP || r == X86_REG_EBP || r == X86_REG_BP || r == X86_REG_BPL; }

// Stack state before an instruction.
struct State {
    bool sp_known = true;
    int32_t sp_off = 8;       // CFA - rsp
    bool bp_frame = false;    // rbp holds CFA - bp_off
    int32_t bp_off = 0;
    bool base_bp = false;     // the CFA is rbp-based (a frame pointer was set up)
    bool bp_saved = false;    // caller's rbp saved at CFA + bp_slot
    int32_t bp_slot = 0;

    bool operator==(const State&) const = default;

    std::optional<CfaRule> rule() const {
        CfaRule r;
        if (sp_known) r.sp_offset = sp_off;
        if (bp_saved) r.bp_saved = bp_slot;
        if (base_bp && bp_frame) {
            r.base = CfaRule::Base::bp;
            r.offset = bp_off;
            return r;
        }
        if (!sp_known) return std::nullopt;
        r.base = CfaRule::Base::sp;
        r.offset = sp_off;
        return r;
    }
};

enum class Flow { next, jump, branch, stop };

struct Effect {
    Flow flow = Flow::next;
    uint64_t target = 0;
};

// Applies one instruction to the state; says where control goes next.
Effect apply(const cs_insn* in, State& s, const CodeMap* map) {
    const cs_x86& x = in->detail->x86;
    auto op_reg = [&](int i) -> unsigned {
        return i < x.op_count && x.operands[i].type == X86_OP_REG ? x.operands[i].reg : X86_REG_INVALID;
    };
    auto op_imm = [&](int i) -> std::optional<int64_t> {
        if (i < x.op_count && x.operands[i].type == X86_OP_IMM) return x.operands[i].imm;
        return std::nullopt;
    };
    auto lose_sp = [&] { s.sp_known = false; };
    auto bp_written = [&] {
        s.bp_frame = false;
        s.base_bp = false;
    };
    const unsigned dst = op_reg(0);
    const unsigned src = op_reg(1);

    switch (in->id) {
        case X86_INS_PUSH: {
            int32_t size = x.prefix[2] == 0x66 ? 2 : 8;
            s.sp_off += size;
            if (is_bp(dst) && s.sp_known) {
                s.bp_saved = true;
                s.bp_slot = -s.sp_off;
            }
            return {};
        }
        case X86_INS_PUSHFQ:
        case X86_INS_PUSHAL:
            s.sp_off += 8;
            return {};
        case X86_INS_POP:
            if (is_sp(dst)) {
                lose_sp();
                return {};
            }
            s.sp_off -= x.prefix[2] == 0x66 ? 2 : 8;
            if (is_bp(dst)) {
                bp_written();
                s.bp_saved = false;
            }
            return {};
        case X86_INS_POPFQ:
            s.sp_off -= 8;
            return {};
        case X86_INS_SUB:
        case X86_INS_ADD:
            if (is_sp(dst)) {
                auto imm = op_imm(1);
                if (!imm) lose_sp();
                else s.sp_off += static_cast<int32_t>(in->id == X86_INS_SUB ? *imm : -*imm);
                return {};
            }
            break;
        case X86_INS_LEA:
            if (is_sp(dst) && x.op_count == 2 && x.operands[1].type == X86_OP_MEM) {
                const x86_op_mem& m = x.operands[1].mem;
                if (m.index != X86_REG_INVALID) {
                    lose_sp();
                } else if (is_sp(m.base)) {
                    s.sp_off -= static_cast<int32_t>(m.disp);
                } else if (is_bp(m.base) && s.bp_frame) {
                    s.sp_known = true;
                    s.sp_off = s.bp_off - static_cast<int32_t>(m.disp);
                } else {
                    lose_sp();
                }
                return {};
            }
            break;
        case X86_INS_MOV:
            if (is_bp(dst) && is_sp(src) && x.operands[0].size == 8) {
                if (!s.sp_known) {
                    bp_written();
                    return {};
                }
                s.bp_frame = true;
                s.bp_off = s.sp_off;
                // Like objtool: the CFA becomes rbp-based only for a real
                // frame pointer (rbp pushed just before, at the current rsp).
                if (s.bp_saved && s.bp_slot == -s.sp_off) s.base_bp = true;
                return {};
            }
            if (is_sp(dst) && is_bp(src)) {
                if (s.bp_frame) {
                    s.sp_known = true;
                    s.sp_off = s.bp_off;
                } else {
                    lose_sp();
                }
                return {};
            }
            break;
        case X86_INS_LEAVE:
            if (s.bp_frame) {
                s.sp_known = true;
                s.sp_off = s.bp_off - 8;
            } else {
                lose_sp();
            }
            bp_written();
            s.bp_saved = false;
            return {};
        case X86_INS_ENTER:
            lose_sp();
            bp_written();
            return {};
        case X86_INS_CALL:
        case X86_INS_LCALL:
            // The callee returns with rsp where it was (noreturn callees are
            // not known here: the fallthrough is followed anyway).
            return {};
        case X86_INS_RET:
        case X86_INS_RETF:
        case X86_INS_RETFQ:
        case X86_INS_IRET:
        case X86_INS_IRETD:
        case X86_INS_IRETQ:
        case X86_INS_UD2:
        case X86_INS_INT3:
        case X86_INS_SYSRET:
        case X86_INS_SYSEXIT:
        case X86_INS_LJMP:
            return {Flow::stop, 0};
        case X86_INS_JMP:
            if (auto t = op_imm(0)) return {Flow::jump, static_cast<uint64_t>(*t)};
            return {Flow::stop, 0};  // indirect jump: tail call or table
        default:
            break;
    }
    // Conditional branches (jcc, loop, jrcxz).
    for (unsigned g = 0; g < in->detail->groups_count; ++g)
        if (in->detail->groups[g] == X86_GRP_JUMP) {
            if (auto t = op_imm(0)) return {Flow::branch, static_cast<uint64_t>(*t)};
            return {};
        }
    // Any other write to rsp or rbp.
    if (x.op_count >= 1 && x.operands[0].type == X86_OP_REG && (x.operands[0].access & CS_AC_WRITE)) {
        if (is_sp(dst)) lose_sp();
        if (is_bp(dst)) bp_written();
    }
    if (in->id == X86_INS_XCHG && (is_sp(src) || is_sp(dst))) lose_sp();
    if (in->id == X86_INS_XCHG && (is_bp(src) || is_bp(dst))) bp_written();
    (void)map;
    return {};
}

}  // namespace

PrologueAnalyzer::PrologueAnalyzer(MemorySource& code, const CodeMap* map, size_t cache_functions)
    : code_(code), map_(map), cache_max_(cache_functions) {}

std::optional<CfaRule> PrologueAnalyzer::at(uint64_t pc) {
    if (!map_) return std::nullopt;
    auto f = map_->function_at(pc);
    if (!f || pc < f->start) return std::nullopt;
    return at(f->start, f->size, pc);
}

std::optional<CfaRule> PrologueAnalyzer::at(uint64_t start, uint64_t size, uint64_t pc) {
    if (pc < start) return std::nullopt;
    if (size && pc >= start + size) return std::nullopt;
    std::shared_ptr<const Analysis> a;
    bool cacheable = size && size <= kMaxFunction;
    if (cacheable) {
        if (auto it = cache_.find(start); it != cache_.end()) {
            ++stats_.cache_hits;
            lru_.splice(lru_.begin(), lru_, it->second.second);
            a = it->second.first;
        }
    }
    if (!a) {
        uint64_t len = cacheable ? size : std::min<uint64_t>(pc - start + 1, kMaxFunction);
        if (pc - start >= len) return std::nullopt;
        a = analyze(start, len);
        if (cacheable) {
            lru_.push_front(start);
            cache_[start] = {a, lru_.begin()};
            while (cache_.size() > cache_max_) {
                cache_.erase(lru_.back());
                lru_.pop_back();
            }
        }
    }
    uint32_t off = static_cast<uint32_t>(pc - start);
    auto it = std::lower_bound(a->offsets.begin(), a->offsets.end(), off);
    if (it == a->offsets.end() || *it != off) return std::nullopt;
    return a->rules[it - a->offsets.begin()];
}

std::shared_ptr<const PrologueAnalyzer::Analysis> PrologueAnalyzer::analyze(uint64_t start, uint64_t size) {
    ++stats_.functions;
    std::vector<uint8_t> bytes(size);
    bytes.resize(code_.read(start, bytes.data(), size));

    // Linear decode: compiled kernel code keeps no data inside functions.
    std::vector<uint32_t> offs;
    for (size_t off = 0; off < bytes.size();) {
        const cs_insn* in = dis_.decode(std::span<const uint8_t>(bytes).subspan(off), start + off);
        if (!in) {
            ++stats_.undecodable;
            break;
        }
        offs.push_back(static_cast<uint32_t>(off));
        off += in->size;
    }
    stats_.instructions += offs.size();

    auto a = std::make_shared<Analysis>();
    a->offsets = offs;
    a->rules.assign(offs.size(), std::nullopt);
    if (offs.empty()) return a;

    auto index_of = [&](uint64_t addr) -> std::optional<size_t> {
        if (addr < start || addr >= start + size) return std::nullopt;
        uint32_t o = static_cast<uint32_t>(addr - start);
        auto it = std::lower_bound(offs.begin(), offs.end(), o);
        if (it == offs.end() || *it != o) return std::nullopt;
        return static_cast<size_t>(it - offs.begin());
    };

    std::vector<std::optional<State>> st(offs.size());
    std::vector<size_t> work;
    st[0] = State{};
    work.push_back(0);
    auto reach = [&](size_t i, const State& s) {
        if (!st[i]) {
            st[i] = s;
            work.push_back(i);
        } else if (!(*st[i] == s)) {
            ++stats_.merge_conflicts;
        }
    };
    while (!work.empty()) {
        size_t i = work.back();
        work.pop_back();
        // Follow the fallthrough chain without going through the work list.
        while (true) {
            State s = *st[i];
            uint32_t off = offs[i];
            const cs_insn* in = dis_.decode(std::span<const uint8_t>(bytes).subspan(off), start + off);
            if (!in) break;
            Effect e = apply(in, s, map_);
            if (e.flow == Flow::jump || e.flow == Flow::branch) {
                // A jump out of the function (tail call, return thunk) ends
                // the path; a jump inside passes the state on.
                if (auto t = index_of(e.target)) reach(*t, s);
            }
            if (e.flow == Flow::stop || e.flow == Flow::jump) break;
            if (i + 1 >= offs.size()) break;
            if (st[i + 1]) {
                if (!(*st[i + 1] == s)) ++stats_.merge_conflicts;
                break;
            }
            st[i + 1] = s;
            ++i;
        }
    }
    for (size_t i = 0; i < offs.size(); ++i)
        if (st[i]) a->rules[i] = st[i]->rule();
    return a;
}

}  // namespace kq
