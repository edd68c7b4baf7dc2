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
    auto try_len = [&](size_t len) -> std::optional<CallSite> {
        if (len > have || len > ret_addr) return std::nullopt;
        auto bytes = before.subspan(have - len, len);
        const cs_insn* in = d.decode(bytes, ret_addr - len);
        if (!in || in->size != len || in->id != X86_INS_CALL) return std::nullopt;
        CallSite c{ret_addr - len, static_cast<uint8_t>(len), false, 0};
        // call rel32: opcode e8 followed by the displacement, possibly
        // behind prefixes (a cs prefix pads retpoline call sites).
        if (len >= 5 && bytes[len - 5] == 0xe8) {
            bool prefixes_only = true;
            for (size_t i = 0; i + 5 < len; ++i)
                if (bytes[i] != 0x2e && bytes[i] != 0x3e && bytes[i] != 0x66 && bytes[i] != 0x67) prefixes_only = false;
            if (prefixes_only) {
                int32_t rel;
                memcpy(&rel, bytes.data() + len - 4, 4);
                c.direct = true;
                c.target = ret_addr + static_cast<int64_t>(rel);
            }
        }
        return c;
    };
    // Direct calls first: a 5-byte call rel32, or one behind 1-2 prefixes.
    for (size_t len : {5, 6, 7}) {
        auto c = try_len(len);
        if (c && c->direct && (!code || code->is_text(c->target))) return c;
    }
    // Indirect calls (ff /2): 2 bytes (call *%rax) up to REX + ModRM + SIB +
    // disp32 and prefixes.
    for (size_t len = 2; len <= kMaxCallLength; ++len) {
        auto c = try_len(len);
        if (c && !c->direct) return c;
    }
    return std::nullopt;
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
