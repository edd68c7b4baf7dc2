#include "unwinder/disasm.h"

#include <cstring>
#include <string>

#include "unwinder/code_map.h"

namespace kq {

Disassembler::Disassembler(bool detail) : detail_(detail) {
    cs_err e = cs_open(CS_ARCH_X86, CS_MODE_64, &h_);
    if (e != CS_ERR_OK) throw Error(std::string("capstone: ") + cs_strerror(e));
    if (detail) cs_option(h_, CS_OPT_DETAIL, CS_OPT_ON);
    insn_ = cs_malloc(h_);
    if (!insn_) {
        cs_close(&h_);
        throw Error("capstone: cannot allocate an instruction");
    }
}

Disassembler::~Disassembler() {
    if (insn_) cs_free(insn_, 1);
    if (h_) cs_close(&h_);
}

Disassembler::Disassembler(Disassembler&& o) noexcept : h_(o.h_), insn_(o.insn_), detail_(o.detail_) {
    o.h_ = 0;
    o.insn_ = nullptr;
}

Disassembler& Disassembler::operator=(Disassembler&& o) noexcept {
    if (this != &o) {
        if (insn_) cs_free(insn_, 1);
        if (h_) cs_close(&h_);
        h_ = o.h_;
        insn_ = o.insn_;
        detail_ = o.detail_;
        o.h_ = 0;
        o.insn_ = nullptr;
    }
    return *this;
}

const cs_insn* Disassembler::decode(std::span<const uint8_t> code, uint64_t addr) {
    const uint8_t* p = code.data();
    size_t n = code.size();
    uint64_t a = addr;
    if (!n || !cs_disasm_iter(h_, &p, &n, &a, insn_)) return nullptr;
    return insn_;
}

std::optional<CallSite> call_ending_at(Disassembler& d, std::span<const uint8_t> before, uint64_t ret_addr,
                                       const CodeMap* code) {
    const size_t have = before.size();
    // A call of `len` bytes ending at ret_addr, with its operand text.
    auto try_len = [&](size_t len, std::string* ops) -> std::optional<CallSite> {
        if (len > have || len > ret_addr) return std::nullopt;
        auto bytes = before.subspan(have - len, len);
        const cs_insn* in = d.decode(bytes, ret_addr - len);
        if (!in || in->size != len || in->id != X86_INS_CALL) return std::nullopt;
        if (ops) *ops = in->op_str;
        // A direct call's operand is its target, printed as a number.
        bool direct = in->op_str[0] == '0' && in->op_str[1] == 'x';
        return CallSite{ret_addr - len, static_cast<uint8_t>(len), direct, 0};
    };

    // call rel32: e8 and the displacement.
    if (have >= 5 && before[have - 5] == 0xe8 && try_len(5, nullptr)) {
        int32_t rel;
        memcpy(&rel, before.data() + have - 4, 4);
        CallSite c{ret_addr - 5, 5, true, ret_addr + static_cast<int64_t>(rel)};
        if (!code || code->is_text(c.target)) {
            // Calls to retpoline thunks carry a cs prefix (padding for the
            // alternative that replaces them): then the call starts there.
            if (have >= 6 && before[have - 6] == 0x2e && code && code->thunk_at(c.target) == ThunkKind::indirect) {
                c.addr -= 1;
                c.length = 6;
            }
            return c;
        }
    }

    // Indirect calls (ff /2): 2 bytes (call *%rax) up to prefixes + REX +
    // ModRM + SIB + disp32. Where several lengths decode as a call ending
    // here, a longer one wins only if its extra leading bytes change the
    // operand (41 ff d3 is call *%r11, not a stray 41 and call *%rbx), not
    // when they are a prefix without effect (f2 ff 15 ... is a bnd prefix or
    // the last byte of the previous instruction).
    std::optional<CallSite> best;
    std::string best_ops, ops;
    for (size_t len = 2; len <= kMaxCallLength; ++len) {
        auto c = try_len(len, &ops);
        if (!c || c->direct) continue;
        if (!best || ops != best_ops) {
            best = c;
            best_ops = ops;
        }
    }
    return best;
}

std::optional<CallSite> call_ending_at(Disassembler& d, MemorySource& mem, uint64_t ret_addr, const CodeMap* code) {
    uint8_t buf[kMaxCallLength];
    // Read as much as can be read just before ret_addr (a page boundary may
    // cut the front).
    for (size_t want = kMaxCallLength; want >= 2; --want) {
        if (ret_addr < want) continue;
        if (mem.read(ret_addr - want, buf + kMaxCallLength - want, want) == want)
            return call_ending_at(d, std::span<const uint8_t>(buf + kMaxCallLength - want, want), ret_addr, code);
        // A short read means a hole inside the window: shrink it from the
        // front, where the hole must be (the bytes nearest ret_addr matter).
    }
    return std::nullopt;
}

}  // namespace kq
