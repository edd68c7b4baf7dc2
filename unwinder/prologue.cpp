#include "unwinder/prologue.h"

#include <algorithm>
#include <array>
#include <climits>

namespace kq {
namespace {

bool is_sp(unsigned r) { return r == X86_REG_RSP || r == X86_REG_ESP || r == X86_REG_SP || r == X86_REG_SPL; }
bool is_bp(unsigned r) { return r == X86_REG_RBP || r == X86_REG_EBP || r == X86_REG_BP || r == X86_REG_BPL; }

// The general-purpose register (0 rax ... 15 r15) a Capstone register is
// part of, -1 for others.
int gpr(unsigned r) {
    switch (r) {
        case X86_REG_RAX: case X86_REG_EAX: case X86_REG_AX: case X86_REG_AL: case X86_REG_AH: return 0;
        case X86_REG_RCX: case X86_REG_ECX: case X86_REG_CX: case X86_REG_CL: case X86_REG_CH: return 1;
        case X86_REG_RDX: case X86_REG_EDX: case X86_REG_DX: case X86_REG_DL: case X86_REG_DH: return 2;
        case X86_REG_RBX: case X86_REG_EBX: case X86_REG_BX: case X86_REG_BL: case X86_REG_BH: return 3;
        case X86_REG_RSP: case X86_REG_ESP: case X86_REG_SP: case X86_REG_SPL: return 4;
        case X86_REG_RBP: case X86_REG_EBP: case X86_REG_BP: case X86_REG_BPL: return 5;
        case X86_REG_RSI: case X86_REG_ESI: case X86_REG_SI: case X86_REG_SIL: return 6;
        case X86_REG_RDI: case X86_REG_EDI: case X86_REG_DI: case X86_REG_DIL: return 7;
        case X86_REG_R8: case X86_REG_R8D: case X86_REG_R8W: case X86_REG_R8B: return 8;
        case X86_REG_R9: case X86_REG_R9D: case X86_REG_R9W: case X86_REG_R9B: return 9;
        case X86_REG_R10: case X86_REG_R10D: case X86_REG_R10W: case X86_REG_R10B: return 10;
        case X86_REG_R11: case X86_REG_R11D: case X86_REG_R11W: case X86_REG_R11B: return 11;
        case X86_REG_R12: case X86_REG_R12D: case X86_REG_R12W: case X86_REG_R12B: return 12;
        case X86_REG_R13: case X86_REG_R13D: case X86_REG_R13W: case X86_REG_R13B: return 13;
        case X86_REG_R14: case X86_REG_R14D: case X86_REG_R14W: case X86_REG_R14B: return 14;
        case X86_REG_R15: case X86_REG_R15D: case X86_REG_R15W: case X86_REG_R15B: return 15;
        default: return -1;
    }
}

constexpr int32_t kNoCopy = INT32_MIN;

// Stack state before an instruction.
struct State {
    bool sp_known = true;
    int32_t sp_off = 8;       // CFA - rsp
    bool bp_frame = false;    // rbp holds CFA - bp_off
    int32_t bp_off = 0;
    bool base_bp = false;     // the CFA is rbp-based (a frame pointer was set up)
    bool bp_saved = false;    // caller's rbp saved at CFA + bp_slot
    int32_t bp_slot = 0;
    // Registers other than rbp holding a copy of rsp (mov %rsp,%r12 ...
    // mov %r12,%rsp): CFA - value, or kNoCopy.
    std::array<int32_t, 16> copy = [] {
        std::array<int32_t, 16> c;
        c.fill(kNoCopy);
        return c;
    }();
    // Stack switch (call_on_stack: mov %rsp,(%r11); mov %r11,%rsp; call;
    // pop %rsp): [swz_reg] holds an rsp with CFA - rsp = swz_off; once
    // switched, rsp is swz_depth bytes below that slot.
    int8_t swz_reg = -1;
    int32_t swz_off = 0;
    bool switched = false;
    int32_t swz_depth = 0;

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
        if (!sp_known && switched && swz_depth == 0) {
            r.base = CfaRule::Base::sp_indirect;
            r.offset = swz_off;
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
Effect apply(csh h, const cs_insn* in, State& s) {
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
    // Every register the instruction writes, implicit ones included.
    cs_regs rd, wr;
    uint8_t nrd = 0, nwr = 0;
    if (cs_regs_access(h, in, rd, &nrd, wr, &nwr) != CS_ERR_OK) nwr = 0;
    int keep = -1;  // a copy made by this instruction
    Effect eff;
    bool handled = true;

    switch (in->id) {
        case X86_INS_PUSH: {
            int32_t size = x.prefix[2] == 0x66 ? 2 : 8;
            s.sp_off += size;
            if (s.switched) s.swz_depth += size;
            if (is_bp(dst) && s.sp_known) {
                s.bp_saved = true;
                s.bp_slot = -s.sp_off;
            }
            break;
        }
        case X86_INS_PUSHFQ:
            s.sp_off += 8;
            break;
        case X86_INS_POP:
            if (is_sp(dst)) {
                if (s.switched && s.swz_depth == 0) {
                    // Back from the other stack.
                    s.sp_known = true;
                    s.sp_off = s.swz_off;
                    s.switched = false;
                } else {
                    lose_sp();
                }
                break;
            }
            s.sp_off -= x.prefix[2] == 0x66 ? 2 : 8;
            if (s.switched) s.swz_depth -= x.prefix[2] == 0x66 ? 2 : 8;
            if (is_bp(dst)) {
                bp_written();
                s.bp_saved = false;
            }
            break;
        case X86_INS_POPFQ:
            s.sp_off -= 8;
            break;
        case X86_INS_SUB:
        case X86_INS_ADD:
            if (!is_sp(dst)) {
                handled = false;
                break;
            }
            if (auto imm = op_imm(1)) s.sp_off += static_cast<int32_t>(in->id == X86_INS_SUB ? *imm : -*imm);
            else lose_sp();
            break;
        case X86_INS_LEA:
            if (!(is_sp(dst) && x.op_count == 2 && x.operands[1].type == X86_OP_MEM)) {
                handled = false;
                break;
            }
            {
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
            }
            break;
        case X86_INS_MOV:
            if (is_sp(src) && x.operands[0].type == X86_OP_MEM && x.operands[0].mem.index == X86_REG_INVALID &&
                x.operands[0].mem.disp == 0 && gpr(x.operands[0].mem.base) >= 0 && s.sp_known) {
                // mov %rsp,(%reg): the top of another stack gets our rsp.
                s.swz_reg = static_cast<int8_t>(gpr(x.operands[0].mem.base));
                s.swz_off = s.sp_off;
                break;
            }
            if (is_sp(src) && x.operands[0].type == X86_OP_REG && x.operands[0].size == 8) {
                if (is_bp(dst)) {
                    if (!s.sp_known) {
                        bp_written();
                        break;
                    }
                    s.bp_frame = true;
                    s.bp_off = s.sp_off;
                    // Like objtool: the CFA becomes rbp-based only for a
                    // real frame pointer (rbp pushed just before, at the
                    // current rsp).
                    if (s.bp_saved && s.bp_slot == -s.sp_off) s.base_bp = true;
                } else if (int g = gpr(dst); g >= 0 && s.sp_known) {
                    s.copy[g] = s.sp_off;
                    keep = g;
                }
                break;
            }
            if (is_sp(dst)) {
                int g = gpr(src);
                if (is_bp(src) && s.bp_frame) {
                    s.sp_known = true;
                    s.sp_off = s.bp_off;
                } else if (g >= 0 && !is_bp(src) && s.copy[g] != kNoCopy) {
                    s.sp_known = true;
                    s.sp_off = s.copy[g];
                } else if (g >= 0 && g == s.swz_reg) {
                    lose_sp();
                    s.switched = true;
                    s.swz_depth = 0;
                } else {
                    lose_sp();
                }
                break;
            }
            handled = false;
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
            break;
        case X86_INS_ENTER:
            lose_sp();
            bp_written();
            break;
        case X86_INS_UD2:
            // WARN() traps with ud2 and resumes after it (BUG() does not,
            // but what follows it is then unreachable anyway).
            break;
        case X86_INS_CALL:
        case X86_INS_LCALL:
            // The callee returns with rsp where it was (noreturn callees are
            // not known here: the fallthrough is followed anyway) and may
            // change the caller-saved registers.
            for (int g : {0, 1, 2, 6, 7, 8, 9, 10, 11}) s.copy[g] = kNoCopy;
            break;
        case X86_INS_RET:
        case X86_INS_RETF:
        case X86_INS_RETFQ:
        case X86_INS_IRET:
        case X86_INS_IRETD:
        case X86_INS_IRETQ:
        case X86_INS_INT3:
        case X86_INS_SYSRET:
        case X86_INS_SYSEXIT:
        case X86_INS_LJMP:
            eff.flow = Flow::stop;
            break;
        case X86_INS_JMP:
            if (auto t = op_imm(0)) eff = {Flow::jump, static_cast<uint64_t>(*t)};
            else eff.flow = Flow::stop;  // indirect jump: tail call or table
            break;
        default:
            handled = false;
            break;
    }
    if (!handled) {
        // Conditional branches (jcc, loop, jrcxz).
        for (unsigned g = 0; g < in->detail->groups_count; ++g)
            if (in->detail->groups[g] == X86_GRP_JUMP)
                if (auto t = op_imm(0)) eff = {Flow::branch, static_cast<uint64_t>(*t)};
    }
    // Registers written: copies of rsp in them are gone; rsp or rbp written
    // by an instruction not handled above loses track of them.
    for (unsigned i = 0; i < nwr; ++i) {
        int g = gpr(wr[i]);
        if (g < 0 || g == keep) continue;
        if (g == 4) {
            if (!handled) lose_sp();
            continue;
        }
        if (g == 5) {
            if (!handled) bp_written();
            continue;
        }
        s.copy[g] = kNoCopy;
        if (g == s.swz_reg && !s.switched) s.swz_reg = -1;
    }
    return eff;
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

void PrologueAnalyzer::set_hidden_edges(const HiddenEdges* e) {
    edges_ = e;
    cache_.clear();
    lru_.clear();
}

// A jump out of the function continues the same frame when it goes to code
// that is no other function's entry: a .cold part or .altinstr_aux code,
// which jump back. A jump to a function's start is a tail call.
bool PrologueAnalyzer::follow_out(uint64_t target) const {
    if (!map_ || !map_->is_text(target)) return false;
    auto f = map_->function_at(target);
    if (!f) return true;
    if (thunk_kind_of(f->name) != ThunkKind::none) return false;
    if (f->name.find(".cold") != std::string::npos) return true;
    return f->start != target;
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

    const uint64_t end = start + bytes.size();
    auto inside = [&](uint64_t addr) { return addr >= start && addr < end; };
    auto index_of = [&](uint64_t addr) -> std::optional<size_t> {
        if (!inside(addr)) return std::nullopt;
        uint32_t o = static_cast<uint32_t>(addr - start);
        auto it = std::lower_bound(offs.begin(), offs.end(), o);
        if (it == offs.end() || *it != o) return std::nullopt;
        return static_cast<size_t>(it - offs.begin());
    };

    // States by address: the function's own instructions and any followed
    // outside it.
    std::vector<std::optional<State>> st(offs.size());
    std::unordered_map<uint64_t, State> out_st;
    size_t foreign = 0;
    std::vector<uint64_t> work;
    auto reach = [&](uint64_t addr, const State& s) {
        if (auto i = index_of(addr)) {
            if (!st[*i]) {
                st[*i] = s;
                work.push_back(addr);
            } else if (!(*st[*i] == s)) {
                ++stats_.merge_conflicts;
            }
            return;
        }
        if (inside(addr) || foreign >= kMaxForeign) return;  // not on a boundary / budget spent
        auto [it, fresh] = out_st.emplace(addr, s);
        if (fresh) {
            ++foreign;
            work.push_back(addr);
        } else if (!(it->second == s)) {
            ++stats_.merge_conflicts;
        }
    };
    auto state_at = [&](uint64_t addr) -> State* {
        if (auto i = index_of(addr)) return st[*i] ? &*st[*i] : nullptr;
        auto it = out_st.find(addr);
        return it == out_st.end() ? nullptr : &it->second;
    };

    st[0] = State{};
    work.push_back(start);
    uint8_t buf[16];
    while (!work.empty()) {
        uint64_t addr = work.back();
        work.pop_back();
        State s = *state_at(addr);
        const cs_insn* in;
        if (inside(addr)) {
            in = dis_.decode(std::span<const uint8_t>(bytes).subspan(addr - start), addr);
        } else {
            size_t n = code_.read(addr, buf, sizeof buf);
            in = dis_.decode(std::span<const uint8_t>(buf, n), addr);
            ++stats_.foreign;
        }
        if (!in) continue;
        uint64_t next = addr + in->size;
        Effect e = apply(dis_.handle(), in, s);
        if (edges_) {
            // A static-key site is a nop or a jmp, whichever the key says;
            // a user access may fault to its fixup or go on: both its target
            // and the next instruction are reachable.
            auto sites = edges_->at(addr);
            for (const auto& [site, target] : sites) reach(target, s);
            if (!sites.empty()) reach(next, s);
        }
        if (e.flow == Flow::jump || e.flow == Flow::branch) {
            // Inside: pass the state on. Outside: follow code that is part
            // of this frame; anything else (tail call, return thunk) ends
            // the path.
            if (inside(e.target) || follow_out(e.target)) reach(e.target, s);
        }
        if (e.flow == Flow::stop || e.flow == Flow::jump) continue;
        // Falling out of the function's end (into padding or the next
        // function) is not followed.
        if (inside(addr) && !inside(next)) continue;
        reach(next, s);
    }
    for (size_t i = 0; i < offs.size(); ++i)
        if (st[i]) a->rules[i] = st[i]->rule();
    return a;
}

}  // namespace kq
