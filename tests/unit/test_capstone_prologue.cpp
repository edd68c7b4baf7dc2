// Prologue analysis: hand-written functions, and agreement with ORC on real
// vmlinux functions (the CFA rule at several pcs inside each).
#include <elf.h>
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "memory_fixture.h"
#include "test_unwind_support.h"
#include "unwinder/prologue.h"

using namespace kq;

namespace {

constexpr uint64_t kFn = 0xffffffff81100000;

struct Fn {
    test::FixtureMemory mem;
    uint64_t size;
    explicit Fn(std::vector<uint8_t> code) : size(code.size()) { mem.put(kFn, code.data(), code.size()); }
};

}  // namespace

TEST(Prologue, PushesAndSub) {
    // push %rbp; push %rbx; sub $0x10,%rsp; call X; add $0x10,%rsp; pop %rbx; pop %rbp; ret
    Fn f({0x55, 0x53, 0x48, 0x83, 0xec, 0x10, 0xe8, 0, 0, 0, 0, 0x48, 0x83, 0xc4, 0x10, 0x5b, 0x5d, 0xc3});
    PrologueAnalyzer p(f.mem, nullptr);
    auto at = [&](uint64_t off) { return p.at(kFn, f.size, kFn + off); };
    EXPECT_EQ(at(0)->offset, 8);
    EXPECT_EQ(at(1)->offset, 16);
    EXPECT_EQ(*at(1)->bp_saved, -16);
    EXPECT_EQ(at(2)->offset, 24);
    EXPECT_EQ(at(6)->offset, 40);
    EXPECT_EQ(at(11)->offset, 40);  // after the call
    EXPECT_EQ(at(15)->offset, 24);
    EXPECT_EQ(at(16)->offset, 16);
    EXPECT_EQ(at(17)->offset, 8);
    EXPECT_FALSE(at(17)->bp_saved);
    EXPECT_FALSE(at(3));  // not an instruction boundary
    EXPECT_EQ(p.stats().functions, 1u);
    EXPECT_GE(p.stats().cache_hits, 8u);
}

TEST(Prologue, CodeAfterEarlyReturn) {
    // 0: push %rbx; 1: test %edi,%edi; 3: je 9; 5: pop %rbx; 6: ret;
    // 7: int3; int3; 9: mov %edi,%ebx (CFA still sp+16); b: pop %rbx; c: ret
    Fn f({0x53, 0x85, 0xff, 0x74, 0x04, 0x5b, 0xc3, 0xcc, 0xcc, 0x89, 0xfb, 0x5b, 0xc3});
    PrologueAnalyzer p(f.mem, nullptr);
    EXPECT_EQ(p.at(kFn, f.size, kFn + 6)->offset, 8);
    EXPECT_EQ(p.at(kFn, f.size, kFn + 9)->offset, 16);  // a linear walk would say 8
    EXPECT_EQ(p.at(kFn, f.size, kFn + 0xb)->offset, 16);
    EXPECT_FALSE(p.at(kFn, f.size, kFn + 7));  // unreachable padding
}

TEST(Prologue, FramePointer) {
    // push %rbp; mov %rsp,%rbp; and $-16,%rsp; sub $0x20,%rsp; nop; leave; ret
    Fn f({0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xe4, 0xf0, 0x48, 0x83, 0xec, 0x20, 0x90, 0xc9, 0xc3});
    PrologueAnalyzer p(f.mem, nullptr);
    auto r = p.at(kFn, f.size, kFn + 4);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->base, CfaRule::Base::bp);
    EXPECT_EQ(r->offset, 16);
    r = p.at(kFn, f.size, kFn + 12);  // after the realignment: still rbp-based
    ASSERT_TRUE(r);
    EXPECT_EQ(r->base, CfaRule::Base::bp);
    EXPECT_FALSE(r->sp_offset);
    r = p.at(kFn, f.size, kFn + 14);  // after leave
    ASSERT_TRUE(r);
    EXPECT_EQ(r->base, CfaRule::Base::sp);
    EXPECT_EQ(r->offset, 8);
}

TEST(Prologue, StackSwitch) {
    // push %rbp; mov %rsp,(%r11); mov %r11,%rsp; call X; pop %rsp; pop %rbp; ret
    Fn f({0x55, 0x49, 0x89, 0x23, 0x4c, 0x89, 0xdc, 0xe8, 0, 0, 0, 0, 0x5c, 0x5d, 0xc3});
    PrologueAnalyzer p(f.mem, nullptr);
    auto call = p.at(kFn, f.size, kFn + 7);
    ASSERT_TRUE(call);
    EXPECT_EQ(call->base, CfaRule::Base::sp_indirect);  // CFA = *(rsp) + 16
    EXPECT_EQ(call->offset, 16);
    auto back = p.at(kFn, f.size, kFn + 13);  // after pop %rsp
    ASSERT_TRUE(back);
    EXPECT_EQ(back->base, CfaRule::Base::sp);
    EXPECT_EQ(back->offset, 16);
}

TEST(Prologue, RspCopyInRegister) {
    // mov %rsp,%r12; push %rax; call X; mov %r12,%rsp; ret
    Fn f({0x49, 0x89, 0xe4, 0x50, 0xe8, 0, 0, 0, 0, 0x4c, 0x89, 0xe4, 0xc3});
    PrologueAnalyzer p(f.mem, nullptr);
    EXPECT_EQ(p.at(kFn, f.size, kFn + 9)->offset, 16);
    EXPECT_EQ(p.at(kFn, f.size, kFn + 12)->offset, 8);
    // The same with the copy in a caller-saved register, lost by the call.
    Fn g({0x48, 0x89, 0xe0, 0x50, 0xe8, 0, 0, 0, 0, 0x48, 0x89, 0xc4, 0xc3});
    PrologueAnalyzer q(g.mem, nullptr);
    EXPECT_FALSE(q.at(kFn, g.size, kFn + 12));
}

TEST(Prologue, LostStackPointer) {
    // sub %rax,%rsp (no frame pointer): the CFA is lost.
    Fn f({0x48, 0x29, 0xc4, 0x90, 0xc3});
    PrologueAnalyzer p(f.mem, nullptr);
    EXPECT_TRUE(p.at(kFn, f.size, kFn));
    EXPECT_FALSE(p.at(kFn, f.size, kFn + 3));
}

TEST(Prologue, UnreadableAndGarbage) {
    test::FixtureMemory empty;
    PrologueAnalyzer p(empty, nullptr);
    EXPECT_FALSE(p.at(kFn, 32, kFn + 4));
    // Bytes Capstone rejects: analysis stops there, nothing past it.
    Fn f({0x55, 0x0f, 0x0b, 0x06, 0x06, 0x06, 0x90});
    PrologueAnalyzer q(f.mem, nullptr);
    EXPECT_TRUE(q.at(kFn, f.size, kFn + 1));
    EXPECT_FALSE(q.at(kFn, f.size, kFn + 6));
}

namespace {

struct Agreement {
    size_t functions = 0, functions_compared = 0, pcs = 0, compared = 0, agree = 0, no_orc_rule = 0;
    std::map<std::string, size_t> causes;
    std::vector<std::string> examples;
    double rate() const { return compared ? static_cast<double>(agree) / compared : 0; }
};

// Compares the prologue rule with ORC at every instruction boundary of each
// function (where ORC gives a call-type rule on sp, bp or (sp)).
Agreement compare_with_orc(const test::Vmlinux& v, const std::vector<const ElfSymbol*>& funcs, PrologueAnalyzer& p) {
    Agreement ag;
    Disassembler lin;
    ag.functions = funcs.size();
    for (const ElfSymbol* f : funcs) {
        auto code = v.image->bytes_at(f->value, f->size);
        bool any = false;
        for (size_t off = 0; off < code.size();) {
            const cs_insn* in = lin.decode(code.subspan(off), f->value + off);
            if (!in) break;
            uint64_t pc = f->value + off;
            off += in->size;
            ++ag.pcs;
            auto h = v.orc.find(pc);
            if (!h || h->entry.type != OrcType::call ||
                (h->entry.sp_reg != OrcReg::sp && h->entry.sp_reg != OrcReg::bp &&
                 h->entry.sp_reg != OrcReg::sp_indirect)) {
                ++ag.no_orc_rule;
                continue;
            }
            ++ag.compared;
            any = true;
            auto r = p.at(f->value, f->size, pc);
            CfaRule::Base ob = h->entry.sp_reg == OrcReg::sp   ? CfaRule::Base::sp
                             : h->entry.sp_reg == OrcReg::bp   ? CfaRule::Base::bp
                                                               : CfaRule::Base::sp_indirect;
            if (r && r->base == ob && r->offset == h->entry.sp_offset) {
                ++ag.agree;
                continue;
            }
            std::string cause = !r ? "no rule (sp lost, or pc not reached)"
                              : r->base != ob ? "different base register" : "different offset";
            ++ag.causes[cause];
            if (ag.examples.size() < 12)
                ag.examples.push_back(f->name + "+" + std::to_string(pc - f->value) + ": orc " + h->entry.describe() +
                                      ", prologue " +
                                      (r ? (r->base == CfaRule::Base::sp ? "sp" : r->base == CfaRule::Base::bp ? "bp" : "(sp)") +
                                                 std::to_string(r->offset)
                                         : std::string("none")));
        }
        ag.functions_compared += any;
    }
    return ag;
}

void print(const char* what, const Agreement& ag) {
    std::printf("%s: functions %zu (compared %zu), pcs %zu, compared %zu, agree %zu (%.3f%%), no ORC call rule %zu\n",
                what, ag.functions, ag.functions_compared, ag.pcs, ag.compared, ag.agree, 100 * ag.rate(),
                ag.no_orc_rule);
    for (auto& [c, n] : ag.causes) std::printf("  disagreement: %s: %zu\n", c.c_str(), n);
    for (auto& e : ag.examples) std::printf("    %s\n", e.c_str());
}

}  // namespace

// The agreement test: for a deterministic sample of 2000 vmlinux functions,
// the prologue rule at every instruction boundary is compared with ORC.
// Printed too: the same without the kernel tables' edges, to show what they
// bring (the causes of disagreement they remove).
TEST(PrologueVmlinux, AgreesWithOrc) {
    KQ_REQUIRE_VMLINUX(v);
    const ElfSection* text = v->image->section(".text");
    ASSERT_TRUE(text);
    std::vector<const ElfSymbol*> funcs;
    for (const auto& s : v->image->symbols())
        if (s.type == STT_FUNC && s.size >= 8 && s.shndx == text->index && s.name.find(".cold") == std::string::npos)
            funcs.push_back(&s);
    std::mt19937_64 rng(2024);
    std::shuffle(funcs.begin(), funcs.end(), rng);
    funcs.resize(std::min<size_t>(funcs.size(), 2000));

    // Static-key edges from vmlinux's __jump_table and exception fixups
    // from __ex_table, their layouts from DWARF.
    EdgeEntryLayout jump = EdgeEntryLayout::jump_entry(v->types());
    EdgeEntryLayout extable = EdgeEntryLayout::exception_table_entry(v->types());
    HiddenEdges edges = HiddenEdges::from_image(*v->image, 0, jump, "__start___jump_table", "__stop___jump_table");
    size_t njump = edges.size();
    edges.merge(HiddenEdges::from_image(*v->image, 0, extable, "__start___ex_table", "__stop___ex_table"));
    std::printf("hidden edges: %zu static keys, %zu exception fixups\n", njump, edges.size() - njump);
    EXPECT_GT(njump, 1000u);
    EXPECT_GT(edges.size(), njump + 100);

    PrologueAnalyzer bare(*v->code, v->map.get());
    print("without hidden edges", compare_with_orc(*v, funcs, bare));

    PrologueAnalyzer p(*v->code, v->map.get());
    p.set_hidden_edges(&edges);
    Agreement ag = compare_with_orc(*v, funcs, p);
    print("with hidden edges", ag);
    const auto& st = p.stats();
    std::printf("analyzer: %llu functions, %llu instructions, %llu followed outside, %llu merge conflicts, "
                "%llu cut short\n",
                (unsigned long long)st.functions, (unsigned long long)st.instructions,
                (unsigned long long)st.foreign, (unsigned long long)st.merge_conflicts,
                (unsigned long long)st.undecodable);
    EXPECT_GE(ag.functions_compared, 1000u);
    // objtool derives ORC with the same kind of analysis from the same code
    // and tables, so the two should agree nearly everywhere. 99% leaves room
    // for what objtool knows and this analysis does not (noreturn functions,
    // hand-written unwind hints, alternatives' replacement code).
    EXPECT_GE(ag.rate(), 0.99);
}
