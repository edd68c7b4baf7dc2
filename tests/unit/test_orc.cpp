// ORC decoding and lookup: hand-written entries, and the real vmlinux.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>

#include "test_unwind_support.h"
#include "unwinder/orc.h"

using namespace kq;

namespace {

// Packs an entry in the v6.1 layout (sp_offset, bp_offset, then the bits).
std::array<uint8_t, 6> pack61(int16_t sp_off, int16_t bp_off, unsigned sp_reg, unsigned bp_reg, unsigned type,
                              unsigned end) {
    std::array<uint8_t, 6> b{};
    memcpy(&b[0], &sp_off, 2);
    memcpy(&b[2], &bp_off, 2);
    b[4] = static_cast<uint8_t>(sp_reg | (bp_reg << 4));
    b[5] = static_cast<uint8_t>(type | (end << 2));
    return b;
}

}  // namespace

TEST(OrcDecode, V61Entries) {
    auto l = OrcLayout::x86_64_end_bit();
    auto call = decode_orc_entry(l, pack61(16, -16, 5, 1, 0, 0));
    ASSERT_TRUE(call);
    EXPECT_EQ(call->sp_reg, OrcReg::sp);
    EXPECT_EQ(call->sp_offset, 16);
    EXPECT_EQ(call->bp_reg, OrcReg::prev_sp);
    EXPECT_EQ(call->bp_offset, -16);
    EXPECT_EQ(call->type, OrcType::call);
    EXPECT_FALSE(call->signal);

    auto regs = decode_orc_entry(l, pack61(0, 0, 5, 0, 1, 0));
    EXPECT_EQ(regs->type, OrcType::regs);
    EXPECT_TRUE(regs->signal);
    auto partial = decode_orc_entry(l, pack61(8, 0, 5, 0, 2, 0));
    EXPECT_EQ(partial->type, OrcType::regs_partial);

    // sp_reg undefined: the end when `end` is set, "no information" when not.
    EXPECT_EQ(decode_orc_entry(l, pack61(0, 0, 0, 0, 0, 1))->type, OrcType::end_of_stack);
    EXPECT_EQ(decode_orc_entry(l, pack61(0, 0, 0, 0, 0, 0))->type, OrcType::undefined);
    // Type 3 does not exist in v6.1.
    EXPECT_EQ(decode_orc_entry(l, pack61(8, 0, 5, 0, 3, 0))->type, OrcType::undefined);

    auto ind = decode_orc_entry(l, pack61(8, 0, 9, 0, 0, 0));
    EXPECT_EQ(ind->sp_reg, OrcReg::sp_indirect);
    EXPECT_EQ(ind->describe(), "sp:sp(ind)+8 bp:undef+0 type:call");

    // Too short for the layout.
    std::array<uint8_t, 4> small{};
    EXPECT_FALSE(decode_orc_entry(l, small));
}

TEST(OrcDecode, V64Entries) {
    auto l = OrcLayout::x86_64_signal_bit();
    std::array<uint8_t, 6> b{};
    int16_t sp = 8;
    memcpy(&b[0], &sp, 2);
    b[4] = 5;              // sp_reg SP
    b[5] = 2;              // type CALL
    EXPECT_EQ(decode_orc_entry(l, b)->type, OrcType::call);
    b[5] = 3 | (1 << 3);   // REGS, signal
    auto r = decode_orc_entry(l, b);
    EXPECT_EQ(r->type, OrcType::regs);
    EXPECT_TRUE(r->signal);
    b[5] = 1;
    EXPECT_EQ(decode_orc_entry(l, b)->type, OrcType::end_of_stack);
    b[5] = 0;
    EXPECT_EQ(decode_orc_entry(l, b)->type, OrcType::undefined);
}

TEST(OrcTable, RelativeIpsSortAndLookup) {
    auto l = OrcLayout::x86_64_end_bit();
    const uint64_t table = 0xffffffffc0010000, text = 0xffffffffc0000000;
    // Three entries given out of order: ips text+0x40, text+0x00, text+0x10.
    uint64_t want[] = {text + 0x40, text + 0x00, text + 0x10};
    std::vector<uint8_t> ips(12), ents;
    for (int i = 0; i < 3; ++i) {
        int32_t rel = static_cast<int32_t>(static_cast<int64_t>(want[i] - (table + 4 * i)));
        memcpy(&ips[4 * i], &rel, 4);
    }
    for (auto e : {pack61(0, 0, 0, 0, 0, 0), pack61(8, 0, 5, 0, 0, 0), pack61(16, 0, 5, 0, 0, 0)})
        ents.insert(ents.end(), e.begin(), e.end());
    auto t = OrcTable::from_raw(ips, table, ents, l, {{text, text + 0x40}}, "m");
    EXPECT_FALSE(t.was_sorted());
    ASSERT_EQ(t.size(), 3u);
    EXPECT_EQ(t.ip(0), text);
    EXPECT_EQ(t.ip(2), text + 0x40);

    EXPECT_EQ(t.find(text)->entry.sp_offset, 8);
    EXPECT_EQ(t.find(text + 0xf)->entry.sp_offset, 8);
    EXPECT_EQ(t.find(text + 0x10)->entry.sp_offset, 16);
    EXPECT_EQ(t.find(text + 0x3f)->entry.sp_offset, 16);
    EXPECT_EQ(t.find(text + 0x3f)->ip, text + 0x10);
    // Outside the text the table answers nothing, even past its last ip.
    EXPECT_FALSE(t.find(text - 1));
    EXPECT_FALSE(t.find(text + 0x40));
    EXPECT_FALSE(t.find(text + 0x1000));

    // Sizes that do not match.
    EXPECT_THROW(OrcTable::from_raw(std::span(ips).first(8), table, ents, l, {}, "m"), Error);
    EXPECT_THROW(OrcTable::from_raw(ips, table, std::span(ents).first(17), l, {}, "m"), Error);
}

TEST(OrcTable, FromMemoryRejectsBadInput) {
    struct Empty : MemorySource {
        size_t read(uint64_t, void*, size_t) override { return 0; }
    } mem;
    auto l = OrcLayout::x86_64_end_bit();
    EXPECT_THROW(OrcTable::from_memory(mem, 0x1000, 0x2000, 10, l, {}, "m"), Error);
    EXPECT_THROW(OrcTable::from_memory(mem, 0x1000, 0x2000, 1ull << 40, l, {}, "m"), Error);
    EXPECT_EQ(OrcTable::from_memory(mem, 0x1000, 0x2000, 0, l, {}, "m").size(), 0u);
}

TEST(OrcVmlinux, TableShapeAndLayout) {
    KQ_REQUIRE_VMLINUX(v);
    const OrcTable& t = v->orc;
    const ElfSection* ip = v->image->section(".orc_unwind_ip");
    ASSERT_TRUE(ip);
    EXPECT_EQ(t.size(), ip->size / 4);
    EXPECT_TRUE(t.was_sorted()) << "vmlinux's table is sorted at build time";
    EXPECT_GT(t.size(), 100000u);
    // The v6.1 bit layout explains the data; the v6.4 one does not.
    double good = orc_layout_score(t, *v->image, 0);
    auto wrong = OrcTable::from_image(*v->image, 0, OrcLayout::x86_64_signal_bit());
    double bad = orc_layout_score(wrong, *v->image, 0);
    std::printf("layout score: v6.1 bits %.4f, v6.4 bits %.4f\n", good, bad);
    EXPECT_GT(good, 0.99);
    EXPECT_LT(bad, 0.05);
}

TEST(OrcVmlinux, FunctionStartsAndSchedule) {
    KQ_REQUIRE_VMLINUX(v);
    const ElfSymbol& sched = v->sym("schedule");
    auto start = v->orc.find(sched.value);
    ASSERT_TRUE(start);
    EXPECT_EQ(start->entry.sp_reg, OrcReg::sp);
    EXPECT_EQ(start->entry.sp_offset, 8);
    EXPECT_EQ(start->entry.type, OrcType::call);

    // Inside schedule, past its pushes: still a call frame on sp, bigger.
    int checked = 0;
    for (uint64_t off = 8; off < std::min<uint64_t>(sched.size, 64); ++off) {
        auto h = v->orc.find(sched.value + off);
        ASSERT_TRUE(h);
        EXPECT_EQ(h->entry.type, OrcType::call);
        EXPECT_EQ(h->entry.sp_reg, OrcReg::sp);
        EXPECT_GE(h->entry.sp_offset, 8);
        ++checked;
    }
    EXPECT_GT(checked, 0);
    auto inner = v->orc.find(sched.value + 0x20);
    std::printf("schedule+0x20: %s\n", inner->entry.describe().c_str());

    // Every function start says "CFA = sp+8", checked over many; GCC's
    // .cold parts continue their parent's frame and are no entry points.
    size_t n = 0, ok = 0;
    for (const auto& s : v->image->symbols()) {
        if (s.type != STT_FUNC || !s.size || n >= 20000 || s.name.find(".cold") != std::string::npos) continue;
        auto h = v->orc.find(s.value);
        if (!h || h->ip != s.value) continue;
        ++n;
        ok += h->entry.sp_reg == OrcReg::sp && h->entry.sp_offset == 8 && h->entry.type == OrcType::call;
    }
    std::printf("function starts with an entry of their own: %zu, CFA=sp+8 call: %zu\n", n, ok);
    EXPECT_GT(n, 10000u);
    EXPECT_GT(static_cast<double>(ok) / n, 0.999);
}

TEST(OrcVmlinux, EntryCodeAndEnds) {
    KQ_REQUIRE_VMLINUX(v);
    // ret_from_fork starts with UNWIND_HINT_EMPTY: the end of a kthread's stack.
    auto rff = v->orc.find(v->sym("ret_from_fork").value);
    ASSERT_TRUE(rff);
    EXPECT_EQ(rff->entry.type, OrcType::end_of_stack);
    // The syscall entry builds a pt_regs: somewhere in it a regs entry.
    const ElfSymbol& sc = v->sym("entry_SYSCALL_64");
    bool regs = false, end = false;
    for (uint64_t a = sc.value; a < sc.value + std::max<uint64_t>(sc.size, 0x100); ++a) {
        auto h = v->orc.find(a);
        if (!h) continue;
        regs |= h->entry.type == OrcType::regs;
        end |= h->entry.type == OrcType::end_of_stack;
    }
    EXPECT_TRUE(regs);
    EXPECT_TRUE(end) << "entry_SYSCALL_64 starts without a stack (UNWIND_HINT_EMPTY)";
    // Interrupt entry: asm_common_interrupt has an iret-frame (partial) entry.
    if (const ElfSymbol* ci = v->image->symbol("asm_common_interrupt")) {
        bool partial = false;
        for (uint64_t a = ci->value; a < ci->value + std::max<uint64_t>(ci->size, 0x40); ++a)
            if (auto h = v->orc.find(a)) partial |= h->entry.type == OrcType::regs_partial;
        EXPECT_TRUE(partial);
    }
    // Not text: no answer.
    EXPECT_FALSE(v->orc.find(v->sym("linux_banner").value));
}

TEST(OrcVmlinux, Slide) {
    KQ_REQUIRE_VMLINUX(v);
    const uint64_t slide = 0x1e000000;
    auto t = OrcTable::from_image(*v->image, slide, test::v6_1_layout());
    const ElfSymbol& sched = v->sym("schedule");
    auto a = v->orc.find(sched.value + 0x20), b = t.find(sched.value + 0x20 + slide);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->ip + slide, b->ip);
    EXPECT_EQ(a->entry.describe(), b->entry.describe());
    EXPECT_FALSE(t.find(sched.value));  // unslid address: outside the moved text
}
