// Capstone return-address validation: hand-written bytes and real vmlinux code.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "test_unwind_support.h"
#include "unwinder/disasm.h"

using namespace kq;

namespace {

constexpr uint64_t kBase = 0xffffffff81000000;

// A CodeMap where everything in [kBase, kBase+16M) is text.
struct FakeText : CodeMap {
    bool is_text(uint64_t a) const override { return a - kBase < (16u << 20); }
    std::optional<FunctionInfo> function_at(uint64_t) const override { return std::nullopt; }
};

std::optional<CallSite> check(std::vector<uint8_t> before, uint64_t ret, const CodeMap* m = nullptr) {
    Disassembler d;
    return call_ending_at(d, before, ret, m);
}

}  // namespace

TEST(CapstoneCall, DirectRel32) {
    const uint64_t ret = kBase + 0x1005;
    // mov %rdi,%rbx ; call ret+0x100
    auto c = check({0x48, 0x89, 0xfb, 0xe8, 0x00, 0x01, 0x00, 0x00}, ret);
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->direct);
    EXPECT_EQ(c->length, 5);
    EXPECT_EQ(c->addr, ret - 5);
    EXPECT_EQ(c->target, ret + 0x100);
    // Negative displacement.
    c = check({0xe8, 0xfb, 0xff, 0xff, 0xff}, ret);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->target, ret - 5);
    // cs-prefixed (retpoline call site padding): 6 bytes, still direct.
    c = check({0x90, 0x2e, 0xe8, 0x10, 0x00, 0x00, 0x00}, ret);
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->direct);
    EXPECT_EQ(c->target, ret + 0x10);
}

TEST(CapstoneCall, DirectTargetMustBeText) {
    FakeText text;
    const uint64_t ret = kBase + 0x1005;
    EXPECT_TRUE(check({0xe8, 0x00, 0x01, 0x00, 0x00}, ret, &text));
    // Target far outside the text: not taken as a direct call.
    EXPECT_FALSE(check({0xe8, 0x00, 0x00, 0x00, 0x40}, ret, &text));
}

TEST(CapstoneCall, IndirectForms) {
    const uint64_t ret = kBase + 0x2000;
    struct Case {
        std::vector<uint8_t> bytes;
        uint8_t len;
    } cases[] = {
        {{0xff, 0xd0}, 2},                                      // call *%rax
        {{0x41, 0xff, 0xd3}, 3},                                // call *%r11
        {{0xff, 0x50, 0x08}, 3},                                // call *0x8(%rax)
        {{0xff, 0x14, 0x24}, 3},                                // call *(%rsp)
        {{0xff, 0x15, 0x10, 0x20, 0x30, 0x00}, 6},              // call *0x302010(%rip)
        {{0xff, 0x94, 0x24, 0x80, 0x00, 0x00, 0x00}, 7},        // call *0x80(%rsp)
        {{0x41, 0xff, 0x94, 0x24, 0x80, 0x00, 0x00, 0x00}, 8},  // call *0x80(%r12)
    };
    for (const auto& cs : cases) {
        std::vector<uint8_t> b{0x90, 0x90, 0x90};  // nops before
        b.insert(b.end(), cs.bytes.begin(), cs.bytes.end());
        auto c = check(b, ret);
        ASSERT_TRUE(c) << "length " << int(cs.len);
        EXPECT_FALSE(c->direct);
        EXPECT_EQ(c->length, cs.len);
        EXPECT_EQ(c->addr, ret - cs.len);
    }
}

TEST(CapstoneCall, Negatives) {
    const uint64_t ret = kBase + 0x3000;
    EXPECT_FALSE(check({0x48, 0x89, 0xe5}, ret));                    // mov %rsp,%rbp
    EXPECT_FALSE(check({0x90, 0x90, 0xc3}, ret));                    // ret
    EXPECT_FALSE(check({0xe9, 0x00, 0x01, 0x00, 0x00}, ret));        // jmp rel32
    EXPECT_FALSE(check({0xff, 0xe0}, ret));                          // jmp *%rax
    EXPECT_FALSE(check({0x0f, 0x1f, 0x44, 0x00, 0x00}, ret));        // 5-byte nop
    EXPECT_FALSE(check({0x48, 0x83, 0xc4, 0x08}, ret));              // add $8,%rsp
    EXPECT_FALSE(check({}, ret));
    EXPECT_FALSE(check({0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc}, ret));  // int3 padding
    // Misaligned: the address lies inside a call, not at its end.
    std::vector<uint8_t> call{0x90, 0xe8, 0x00, 0x01, 0x00, 0x00};
    for (int cut = 1; cut <= 4; ++cut) {
        std::vector<uint8_t> b(call.begin(), call.end() - cut);
        EXPECT_FALSE(check(b, ret - cut)) << "cut " << cut;
    }
    // A return address at the very bottom of the address space.
    EXPECT_FALSE(check({0xff, 0xd0}, 1));
}

TEST(CapstoneCall, FromMemoryWithHoles) {
    struct Mem : MemorySource {
        uint64_t lo, hi;
        std::vector<uint8_t> bytes;
        size_t read(uint64_t a, void* buf, size_t len) override {
            size_t n = 0;
            while (n < len && a + n >= lo && a + n < hi) {
                static_cast<uint8_t*>(buf)[n] = bytes[a + n - lo];
                ++n;
            }
            return n;
        }
    } m;
    // A page starts 2 bytes before the return address; only `ff d0` is readable.
    m.lo = kBase + 0xffe;
    m.hi = kBase + 0x1000;
    m.bytes = {0xff, 0xd0};
    Disassembler d;
    auto c = call_ending_at(d, m, kBase + 0x1000);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->length, 2);
    EXPECT_FALSE(call_ending_at(d, m, kBase + 0x5000));
}

TEST(CapstoneCall, RaiiMoves) {
    Disassembler a(true);
    Disassembler b(std::move(a));
    const uint8_t ret[] = {0xc3};
    ASSERT_TRUE(b.decode(ret, kBase));
    EXPECT_EQ(b.decode(ret, kBase)->id, X86_INS_RET);
    EXPECT_EQ(a.handle(), 0u);
    a = std::move(b);
    EXPECT_TRUE(a.decode(ret, kBase));
}

// Real code: every call instruction of many vmlinux functions, decoded
// linearly from the function start, validates at its end with the right
// target; the ends of other instructions and points inside calls mostly do
// not.
TEST(CapstoneVmlinux, CallsInRealFunctions) {
    KQ_REQUIRE_VMLINUX(v);
    Disassembler lin;
    Disassembler chk;
    const ElfSection* text = v->image->section(".text");
    ASSERT_TRUE(text);
    std::vector<const ElfSymbol*> funcs;
    for (const auto& s : v->image->symbols())
        if (s.type == STT_FUNC && s.size > 16 && s.size < 8192 && s.shndx == text->index) funcs.push_back(&s);
    std::mt19937_64 rng(61);
    std::shuffle(funcs.begin(), funcs.end(), rng);
    funcs.resize(std::min<size_t>(funcs.size(), 1500));

    size_t calls = 0, calls_ok = 0, direct = 0, direct_target_ok = 0;
    size_t others = 0, others_fp = 0, inside = 0, inside_fp = 0, bad_calls = 0;
    for (const ElfSymbol* f : funcs) {
        auto code = v->image->bytes_at(f->value, f->size);
        for (size_t off = 0; off < code.size();) {
            const cs_insn* in = lin.decode(code.subspan(off), f->value + off);
            if (!in) break;
            uint64_t end = f->value + off + in->size;
            bool is_call = in->id == X86_INS_CALL;
            auto c = call_ending_at(chk, *v->code, end, v->map.get());
            if (is_call) {
                ++calls;
                if (c && c->addr == f->value + off) ++calls_ok;
                else if (bad_calls++ < 20)
                    std::printf("  call at %s+%zu (%s %s) -> %s\n", f->name.c_str(), off, in->mnemonic, in->op_str,
                                c ? ("found at +" + std::to_string(c->addr - f->value)).c_str() : "not found");
                if (code[off] == 0xe8 || (in->size == 6 && code[off + 1] == 0xe8)) {
                    ++direct;
                    int32_t rel;
                    memcpy(&rel, code.data() + off + in->size - 4, 4);
                    if (c && c->direct && c->target == end + rel) ++direct_target_ok;
                }
                for (unsigned k = 1; k < in->size; ++k) {
                    ++inside;
                    if (call_ending_at(chk, *v->code, end - k, v->map.get())) ++inside_fp;
                }
            } else {
                ++others;
                if (c) ++others_fp;
            }
            off += in->size;
        }
    }
    std::printf("calls %zu, validated %zu; direct %zu, target right %zu\n", calls, calls_ok, direct, direct_target_ok);
    std::printf("ends of other instructions %zu, taken for calls %zu (%.3f%%)\n", others, others_fp,
                100.0 * others_fp / std::max<size_t>(1, others));
    std::printf("points inside calls %zu, taken for calls %zu (%.3f%%)\n", inside, inside_fp,
                100.0 * inside_fp / std::max<size_t>(1, inside));
    EXPECT_GT(calls, 5000u);
    EXPECT_EQ(calls_ok, calls);
    EXPECT_EQ(direct_target_ok, direct);
    // A false positive needs bytes that decode as a call ending exactly
    // there: rare, bounded here at 1%.
    EXPECT_LT(static_cast<double>(others_fp) / others, 0.01);
    EXPECT_LT(static_cast<double>(inside_fp) / inside, 0.01);
}

TEST(CapstoneVmlinux, ThunksAndRetFromFork) {
    KQ_REQUIRE_VMLINUX(v);
    const ElfSymbol* rff = v->image->symbol("ret_from_fork");
    ASSERT_TRUE(rff);
    // ret_from_fork calls the thread function through CALL_NOSPEC rbx; in
    // the file that is a call to __x86_indirect_thunk_rbx.
    Disassembler lin, chk;
    auto code = v->image->bytes_at(rff->value, std::max<uint64_t>(rff->size, 64));
    bool found = false;
    for (size_t off = 0; off < code.size();) {
        const cs_insn* in = lin.decode(code.subspan(off), rff->value + off);
        if (!in) break;
        if (in->id == X86_INS_CALL) {
            auto c = call_ending_at(chk, *v->code, rff->value + off + in->size, v->map.get());
            ASSERT_TRUE(c);
            if (c->direct && v->map->thunk_at(c->target) == ThunkKind::indirect) found = true;
        }
        off += in->size;
    }
    EXPECT_TRUE(found);
    EXPECT_EQ(v->map->thunk_at(v->sym("__x86_return_thunk").value), ThunkKind::ret);
    EXPECT_EQ(v->map->thunk_at(v->sym("schedule").value), ThunkKind::none);
}
