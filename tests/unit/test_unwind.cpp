// The unwinder on synthetic kernels: a few functions of real x86 code, their
// ORC table, and stacks written by hand in a FixtureMemory. Good stacks, and
// bad ones: cycles, sp off the stack, unreadable pages, garbage, no unwind
// data, frame limit; pt_regs and IRQ stack crossings.
#include <gtest/gtest.h>

#include <cstring>
#include <algorithm>
#include <map>
#include <random>

#include "memory_fixture.h"
#include "unwinder/unwinder.h"

using namespace kq;

namespace {

constexpr uint64_t T = 0xffffffff81000000;  // text
constexpr uint64_t A = T + 0x000, B = T + 0x100, C = T + 0x200, ENTRY = T + 0x300, IRQ = T + 0x380;
constexpr uint64_t NOORC = T + 0x800;       // code without ORC entries
constexpr uint64_t S = 0xffffc90000010000;  // task stack
constexpr uint64_t STACK_SIZE = 0x4000;
constexpr uint64_t IS = 0xffff888000100000;  // an IRQ stack
constexpr uint64_t USER_PC = 0x401000;

std::array<uint8_t, 6> orc(int16_t sp_off, unsigned sp_reg, unsigned type = 0, unsigned end = 0,
                           int16_t bp_off = 0, unsigned bp_reg = 0) {
    std::array<uint8_t, 6> b{};
    memcpy(&b[0], &sp_off, 2);
    memcpy(&b[2], &bp_off, 2);
    b[4] = static_cast<uint8_t>(sp_reg | (bp_reg << 4));
    b[5] = static_cast<uint8_t>(type | (end << 2));
    return b;
}
constexpr unsigned SP = 5, BP = 4, SP_IND = 9, UNDEF = 0, PREV_SP = 1;
constexpr unsigned CALL = 0, REGS = 1, PARTIAL = 2;

std::vector<uint8_t> call_to(uint64_t at, uint64_t target) {
    int32_t rel = static_cast<int32_t>(static_cast<int64_t>(target - (at + 5)));
    std::vector<uint8_t> v{0xe8, 0, 0, 0, 0};
    memcpy(&v[1], &rel, 4);
    return v;
}

struct Fns : CodeMap {
    std::map<uint64_t, FunctionInfo> fns;
    bool is_text(uint64_t a) const override { return a >= T && a < T + 0x1000; }
    std::optional<FunctionInfo> function_at(uint64_t a) const override {
        auto it = fns.upper_bound(a);
        if (it == fns.begin()) return std::nullopt;
        --it;
        if (a >= it->second.start + it->second.size) return std::nullopt;
        return it->second;
    }
};

// The kernel's pt_regs order (r15 ... ss), as fixture data.
PtRegsLayout regs_layout() {
    PtRegsLayout l;
    l.size = 21 * 8;
    const Reg order[] = {Reg::r15, Reg::r14, Reg::r13, Reg::r12, Reg::rbp, Reg::rbx, Reg::r11,
                         Reg::r10, Reg::r9,  Reg::r8,  Reg::rax, Reg::rcx, Reg::rdx, Reg::rsi,
                         Reg::rdi, Reg::orig_rax, Reg::rip, Reg::cs, Reg::eflags, Reg::rsp, Reg::ss};
    for (unsigned i = 0; i < 21; ++i) l.off[static_cast<unsigned>(order[i])] = i * 8;
    return l;
}

using Entries = std::vector<std::pair<uint64_t, std::array<uint8_t, 6>>>;

OrcTable make_table(Entries ents) {
    std::sort(ents.begin(), ents.end());
    std::vector<uint8_t> ips, entries;
    const uint64_t table = 0xffffffff82000000;
    for (size_t k = 0; k < ents.size(); ++k) {
        int32_t rel = static_cast<int32_t>(static_cast<int64_t>(ents[k].first - (table + 4 * k)));
        ips.insert(ips.end(), reinterpret_cast<uint8_t*>(&rel), reinterpret_cast<uint8_t*>(&rel) + 4);
        entries.insert(entries.end(), ents[k].second.begin(), ents[k].second.end());
    }
    return OrcTable::from_raw(ips, table, entries, OrcLayout::x86_64_end_bit(), {{T, T + 0x400}}, "test");
}

// A: push %rbx; call B; pop %rbx; ret          (CFA sp+16 in the body)
// B: sub $0x10,%rsp; call C; add $0x10,%rsp; ret (CFA sp+24 in the body)
// C: nop; nop; ret                             (CFA sp+8)
// ENTRY: call A; ud2                           (ORC end: the stack's base)
// IRQ: call A; ...                             (ORC at the call: REGS, pt_regs at sp)
// NOORC: push %rbx; call B; pop %rbx; ret      (no ORC: prologue, fp or scan)
struct Kernel {
    test::FixtureMemory mem;
    Fns map;
    OrcIndex index;
    uint64_t R0 = ENTRY + 5, R1 = A + 6, R2 = B + 9, RI = IRQ + 5, RN = NOORC + 6;

    // The ORC entries of the functions above; a test may replace some.
    static Entries default_entries() {
        return {
            {A, orc(8, SP)},          {A + 1, orc(16, SP)},     {A + 7, orc(8, SP)},      {A + 8, orc(0, UNDEF)},
            {B, orc(8, SP)},          {B + 4, orc(24, SP)},     {B + 13, orc(8, SP)},     {B + 14, orc(0, UNDEF)},
            {C, orc(8, SP)},          {C + 3, orc(0, UNDEF)},   {ENTRY, orc(0, UNDEF, 0, 1)},
            {ENTRY + 7, orc(0, UNDEF)}, {IRQ, orc(0, SP, REGS)}, {IRQ + 7, orc(0, UNDEF)},
        };
    }

    explicit Kernel(Entries ents = default_entries()) {
        auto put = [&](uint64_t at, std::vector<uint8_t> code, const char* name) {
            mem.put(at, code.data(), code.size());
            map.fns[at] = FunctionInfo{at, code.size(), name, ""};
        };
        std::vector<uint8_t> a{0x53};
        auto c1 = call_to(A + 1, B);
        a.insert(a.end(), c1.begin(), c1.end());
        a.insert(a.end(), {0x5b, 0xc3});
        put(A, a, "A");
        std::vector<uint8_t> b{0x48, 0x83, 0xec, 0x10};
        auto c2 = call_to(B + 4, C);
        b.insert(b.end(), c2.begin(), c2.end());
        b.insert(b.end(), {0x48, 0x83, 0xc4, 0x10, 0xc3});
        put(B, b, "B");
        put(C, {0x90, 0x90, 0xc3}, "C");
        auto e = call_to(ENTRY, A);
        e.insert(e.end(), {0x0f, 0x0b});
        put(ENTRY, e, "entry");
        auto i = call_to(IRQ, A);
        i.insert(i.end(), {0x0f, 0x0b});
        put(IRQ, i, "irq_entry");
        std::vector<uint8_t> n{0x53};
        auto c3 = call_to(NOORC + 1, B);
        n.insert(n.end(), c3.begin(), c3.end());
        n.insert(n.end(), {0x5b, 0xc3});
        put(NOORC, n, "no_orc");

        index.add(make_table(std::move(ents)));
    }

    Unwinder unwinder(UnwinderOptions o = {}) { return Unwinder(mem, mem, map, index, regs_layout(), o); }
};

// A stack image: words at addresses, written to the fixture page by page.
struct Stack {
    uint64_t base, size;
    std::vector<uint64_t> words;
    Stack(uint64_t b, uint64_t s) : base(b), size(s), words(s / 8, 0) {}
    uint64_t& at(uint64_t a) { return words[(a - base) / 8]; }
    void write(test::FixtureMemory& m, std::optional<uint64_t> skip_page = {}) {
        for (uint64_t p = 0; p < size; p += 4096) {
            if (skip_page && base + p == *skip_page) continue;
            m.put(base + p, reinterpret_cast<uint8_t*>(words.data()) + p, 4096);
        }
    }
};

UnwindStart on_cpu(uint64_t pc, uint64_t sp, uint64_t bp = 0) {
    UnwindStart s;
    s.regs.set(Reg::rip, pc);
    s.regs.set(Reg::rsp, sp);
    s.regs.set(Reg::rbp, bp);
    s.regs.set(Reg::cs, 0x10);
    s.pc_exact = true;
    s.on_cpu = true;
    s.cpu = 0;
    s.stack_base = S;
    s.stack_size = STACK_SIZE;
    return s;
}

// The good stack: ENTRY -> A -> B -> C, C about to run its first nop.
// Returns C's sp.
uint64_t good_stack(Kernel& k, Stack& st, uint64_t sp_e) {
    st.at(sp_e - 8) = k.R0;   // ENTRY's call A
    st.at(sp_e - 16) = 0x1111;  // A's push %rbx
    st.at(sp_e - 24) = k.R1;  // A's call B
    st.at(sp_e - 48) = k.R2;  // B's call C (after sub $0x10)
    return sp_e - 48;
}

std::string methods(const std::vector<Frame>& f) {
    std::string s;
    for (const auto& x : f) s += std::string(s.empty() ? "" : ",") + to_string(x.method);
    return s;
}

}  // namespace

TEST(Unwind, GoodStackReachesBase) {
    Kernel k;
    Stack st(S, STACK_SIZE);
    uint64_t sp_e = S + STACK_SIZE - 0x40;
    uint64_t sp = good_stack(k, st, sp_e);
    st.write(k.mem);
    auto u = k.unwinder();
    auto f = u.unwind(on_cpu(C, sp));
    ASSERT_EQ(f.size(), 4u) << f.back().stop_text();
    EXPECT_EQ(methods(f), "initial,orc,orc,orc");
    EXPECT_EQ(f[0].pc, C);
    EXPECT_FALSE(f[0].return_address);
    EXPECT_EQ(f[1].pc, k.R2);
    EXPECT_EQ(f[1].sp, sp + 8);
    EXPECT_EQ(f[2].pc, k.R1);
    EXPECT_EQ(f[2].sp, sp_e - 16);
    EXPECT_EQ(f[3].pc, k.R0);
    EXPECT_EQ(f[3].sp, sp_e);
    EXPECT_EQ(f[0].cfa, f[1].sp);
    EXPECT_EQ(f[1].cfa, f[2].sp);
    for (size_t i = 1; i < f.size(); ++i) {
        EXPECT_TRUE(f[i].return_address);
        EXPECT_EQ(f[i].confidence, Confidence::high) << i;
        EXPECT_EQ(f[i].stack, StackKind::task);
    }
    EXPECT_EQ(f.back().stop, StopReason::end_of_stack);
    EXPECT_TRUE(reached_base(f));
    EXPECT_EQ(f.back().stop_text().rfind("stop: end of stack", 0), 0u);
    for (size_t i = 0; i + 1 < f.size(); ++i) EXPECT_EQ(f[i].stop, StopReason::none);
}

TEST(Unwind, SleepingTaskStartsFromReturnAddress) {
    Kernel k;
    Stack st(S, STACK_SIZE);
    uint64_t sp_e = S + STACK_SIZE - 0x40;
    uint64_t sp = good_stack(k, st, sp_e);
    st.write(k.mem);
    auto u = k.unwinder();
    // Switch frame: pc is B's return address from C, sp just above it.
    UnwindStart s = on_cpu(k.R2, sp + 8);
    s.pc_exact = false;
    s.on_cpu = false;
    auto f = u.unwind(s);
    ASSERT_EQ(f.size(), 3u) << f.back().stop_text();
    EXPECT_TRUE(f[0].return_address);
    EXPECT_EQ(f[1].pc, k.R1);
    EXPECT_TRUE(reached_base(f));
    // A saved pc listed as exact (ret_from_fork) is looked up as is: at
    // ENTRY itself, the end entry.
    u.set_exact_pc_addresses({ENTRY});
    UnwindStart n = on_cpu(ENTRY, sp_e);
    n.pc_exact = false;
    n.on_cpu = false;
    f = u.unwind(n);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_FALSE(f[0].return_address);
    EXPECT_EQ(f[0].stop, StopReason::end_of_stack);
}

TEST(Unwind, FramePointerCycleStops) {
    Kernel k;
    Stack st(S, STACK_SIZE);
    uint64_t sp = S + 0x1000;
    // Code without ORC, frame pointers that loop (saved rbp = itself).
    st.at(sp) = 0xdead;
    uint64_t bp = sp + 0x20;
    st.at(bp) = bp;           // saved rbp = itself
    st.at(bp + 8) = k.RN;     // a valid return address
    st.write(k.mem);
    UnwinderOptions o;
    o.prologue = false;
    o.scan_fallback = false;
    auto u = k.unwinder(o);
    // pc in NOORC's body has no ORC: frame pointer method.
    auto f = u.unwind(on_cpu(NOORC + 1, sp, bp));
    ASSERT_GE(f.size(), 2u);
    EXPECT_EQ(f[1].method, UnwindMethod::frame_pointer);
    EXPECT_FALSE(reached_base(f));
    EXPECT_LE(f.size(), 4u);
    std::printf("cycle: %zu frames, %s\n", f.size(), f.back().stop_text().c_str());
}

TEST(Unwind, SpNotIncreasingFromBadRbp) {
    Kernel k;
    Stack st(S, STACK_SIZE);
    uint64_t sp = S + 0x1000;
    // rbp below sp: the frame pointer method refuses it; nothing else is on.
    st.at(sp - 0x100) = sp - 0x100;
    st.at(sp - 0xf8) = k.RN;
    st.write(k.mem);
    UnwinderOptions o;
    o.prologue = false;
    o.scan_fallback = false;
    auto u = k.unwinder(o);
    auto f = u.unwind(on_cpu(NOORC + 1, sp, sp - 0x100));
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].stop, StopReason::no_unwind_info);
    std::printf("%s\n", f[0].stop_text().c_str());
}

TEST(Unwind, SpOutsideStack) {
    Kernel k;
    Stack st(S, STACK_SIZE);
    st.write(k.mem);
    auto u = k.unwinder();
    // Initial sp on no stack.
    auto f = u.unwind(on_cpu(C, 0xffff888012345678));
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].stop, StopReason::sp_outside_stack);
    // sp near the top: C's return address slot is past the stack's end.
    f = u.unwind(on_cpu(C, S + STACK_SIZE - 4));
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].stop, StopReason::sp_outside_stack);
    // A thread without a known stack.
    UnwindStart s = on_cpu(C, S + 0x100);
    s.stack_size = 0;
    f = u.unwind(s);
    EXPECT_EQ(f.back().stop, StopReason::sp_outside_stack);
}

TEST(Unwind, UnreadablePage) {
    Kernel k;
    Stack st(S, STACK_SIZE);
    uint64_t sp_e = S + 0x2010;  // A's frame crosses into the page at S+0x2000
    uint64_t sp = good_stack(k, st, sp_e);
    st.write(k.mem, S + 0x2000);  // that page is missing from the dump
    auto u = k.unwinder();
    auto f = u.unwind(on_cpu(C, sp));
    ASSERT_GE(f.size(), 1u);
    EXPECT_EQ(f.back().stop, StopReason::unreadable) << f.back().stop_text();
    EXPECT_FALSE(reached_base(f));
    std::printf("%zu frames, %s\n", f.size(), f.back().stop_text().c_str());
}

TEST(Unwind, GarbageStack) {
    Kernel k;
    Stack st(S, STACK_SIZE);
    for (size_t i = 0; i < st.words.size(); ++i) st.words[i] = 0x9e3779b97f4a7c15ull * (i + 1);
    st.write(k.mem);
    auto u = k.unwinder();
    auto f = u.unwind(on_cpu(C, S + 0x800));
    EXPECT_FALSE(reached_base(f));
    EXPECT_LE(f.size(), 2u);
    std::printf("garbage: %zu frames, %s\n", f.size(), f.back().stop_text().c_str());
    // Garbage pc: not text.
    f = u.unwind(on_cpu(0xffffffffa0001234, S + 0x800));
    EXPECT_FALSE(reached_base(f));
    // Garbage return address under a good ORC entry: bad pc.
    Stack g(S, STACK_SIZE);
    g.at(S + 0x800) = 0xffffffffdeadbeef;
    g.write(k.mem);
    f = u.unwind(on_cpu(C, S + 0x800));
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].stop, StopReason::bad_pc);
}

TEST(Unwind, FrameLimit) {
    Kernel k;
    Stack st(S, STACK_SIZE);
    // B calls C ... pretend B recursed: B frames repeat up the stack, each 24
    // bytes: the unwind stops at the limit, not at the base.
    uint64_t sp = S + 0x100;
    for (uint64_t a = sp; a + 24 < S + STACK_SIZE; a += 24) st.at(a) = k.R2;
    st.write(k.mem);
    UnwinderOptions o;
    o.max_frames = 50;
    auto u = k.unwinder(o);
    auto f = u.unwind(on_cpu(C, sp));
    EXPECT_EQ(f.size(), 50u);
    EXPECT_EQ(f.back().stop, StopReason::max_frames);
}

TEST(Unwind, UserModeAndPtRegs) {
    Kernel k;
    Stack st(S, STACK_SIZE);
    const auto L = regs_layout();
    // An interrupt entry (IRQ) called A with a pt_regs at its sp; the pt_regs
    // says the CPU was in C (kernel mode) with sp at `isp`; C's frame
    // returns to B ... to ENTRY.
    uint64_t sp_e = S + STACK_SIZE - 0x40;
    uint64_t isp = good_stack(k, st, sp_e);  // C's sp when interrupted
    uint64_t regs = S + 0x1000;              // pt_regs below it
    auto set = [&](Reg r, uint64_t v) { st.at(regs + *L.at(r)) = v; };
    set(Reg::rip, C);
    set(Reg::rsp, isp);
    set(Reg::cs, 0x10);
    set(Reg::rbp, 0x4242);
    st.at(regs - 8) = k.RI;      // IRQ's call A
    st.at(regs - 16) = 0x1111;   // A's push
    st.at(regs - 24) = k.R1;     // A's call B
    st.at(regs - 48) = k.R2;     // B's call C
    st.write(k.mem);
    auto u = k.unwinder();
    auto f = u.unwind(on_cpu(C, regs - 48));
    // C, B, A, IRQ entry, then C (interrupted, exact), B, A, ENTRY.
    ASSERT_EQ(f.size(), 8u) << f.back().stop_text();
    EXPECT_EQ(f[3].pc, k.RI);
    EXPECT_EQ(f[3].cfa, regs);
    EXPECT_EQ(f[4].pc, C);
    EXPECT_FALSE(f[4].return_address);
    EXPECT_EQ(f[4].sp, isp);
    EXPECT_TRUE(reached_base(f));

    // The same pt_regs in user mode: the base of the stack.
    set(Reg::cs, 0x33);
    set(Reg::rip, USER_PC);
    st.write(k.mem);
    f = u.unwind(on_cpu(C, regs - 48));
    ASSERT_EQ(f.size(), 4u);
    EXPECT_EQ(f.back().stop, StopReason::user_mode);
    EXPECT_TRUE(reached_base(f));
    // A CPU caught in user mode.
    UnwindStart s = on_cpu(USER_PC, 0x7ffd0000);
    s.regs.set(Reg::cs, 0x33);
    f = u.unwind(s);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].stop, StopReason::user_mode);
}

TEST(Unwind, IrqStackToTaskStack) {
    // C runs on the IRQ stack, entered through call_on_stack: its ORC says
    // sp_indirect, the IRQ stack's top word holds the task's sp.
    Entries e = Kernel::default_entries();
    for (auto& [ip, ent] : e)
        if (ip == C) ent = orc(8, SP_IND);
    Kernel k(e);
    Stack task(S, STACK_SIZE), irq(IS, 0x4000);
    uint64_t sp_e = S + STACK_SIZE - 0x40;
    uint64_t csp = good_stack(k, task, sp_e);  // where C's return address (R2) is
    uint64_t top = IS + 0x4000 - 8;
    irq.at(top) = csp;  // CFA = *(rsp) + 8 = csp + 8: return address at csp
    task.write(k.mem);
    irq.write(k.mem);
    auto u = k.unwinder();
    u.set_cpu_stacks({{IS, 0x4000, StackKind::irq, 0, "irq"}, {IS + 0x10000, 0x4000, StackKind::irq, 1, "irq"}});
    UnwindStart s = on_cpu(C, top);
    auto f = u.unwind(s);
    ASSERT_EQ(f.size(), 4u) << f.back().stop_text();
    EXPECT_EQ(f[0].stack, StackKind::irq);
    EXPECT_EQ(f[1].stack, StackKind::task);
    EXPECT_EQ(f[1].pc, k.R2);
    EXPECT_EQ(f[1].sp, csp + 8);
    EXPECT_TRUE(reached_base(f));
    // Another CPU's IRQ stack is not this thread's.
    s.cpu = 1;
    f = u.unwind(s);
    EXPECT_EQ(f[0].stop, StopReason::sp_outside_stack);
    // A sleeping task never uses the CPU's stacks.
    s.cpu = 0;
    s.on_cpu = false;
    f = u.unwind(s);
    EXPECT_EQ(f[0].stop, StopReason::sp_outside_stack);
}

TEST(Unwind, NoWayBackToALeftStack) {
    // As above, but A's frame (on the task stack) also says sp_indirect and
    // its word points back into the IRQ stack: a cycle across stacks.
    Entries e = Kernel::default_entries();
    for (auto& [ip, ent] : e) {
        if (ip == C) ent = orc(8, SP_IND);
        if (ip == B + 4) ent = orc(8, SP_IND);
    }
    Kernel k(e);
    Stack task(S, STACK_SIZE), irq(IS, 0x4000);
    uint64_t x = S + 0x2000;
    uint64_t top = IS + 0x4000 - 8;
    irq.at(top) = x;
    task.at(x) = k.R2;                 // C returns into B
    task.at(x + 8) = IS + 0x1000;      // B's indirect word: an IRQ stack address
    irq.at(IS + 0x1000) = k.R1;
    task.write(k.mem);
    irq.write(k.mem);
    auto u = k.unwinder();
    u.set_cpu_stacks({{IS, 0x4000, StackKind::irq, 0, "irq"}});
    auto f = u.unwind(on_cpu(C, top));
    ASSERT_EQ(f.size(), 2u) << f.back().stop_text();
    EXPECT_EQ(f.back().stop, StopReason::stack_revisited);
}

TEST(Unwind, OrcCycleStops) {
    // C with a frame-pointer ORC rule (CFA = rbp+16, rbp saved at CFA-16)
    // and a saved rbp pointing at itself: the second step would not move sp.
    Entries e = Kernel::default_entries();
    for (auto& [ip, ent] : e)
        if (ip == C) ent = orc(16, BP, CALL, 0, -16, PREV_SP);
    Kernel k(e);
    Stack st(S, STACK_SIZE);
    uint64_t bp = S + 0x1000;
    st.at(bp) = bp;
    st.at(bp + 8) = C + 1;  // "returns" into C again
    st.write(k.mem);
    auto u = k.unwinder();
    auto f = u.unwind(on_cpu(C, bp - 0x20, bp));
    ASSERT_EQ(f.size(), 2u) << f.back().stop_text();
    EXPECT_EQ(f[1].confidence, Confidence::medium);  // C+1 does not follow a call
    EXPECT_EQ(f.back().stop, StopReason::sp_not_increasing);
}

TEST(Unwind, FallbacksWithoutOrc) {
    Kernel k;
    Stack st(S, STACK_SIZE);
    // ENTRY -> A -> NOORC (push rbx; call B) -> B -> C
    uint64_t sp_e = S + STACK_SIZE - 0x40;
    st.at(sp_e - 8) = k.R0;
    st.at(sp_e - 16) = 0x1111;
    st.at(sp_e - 24) = k.R1;     // A calls B ... pretend A called NOORC: same shape
    // NOORC's frame: entered at sp_e-24, push rbx -> sp_e-32, call B -> ret at sp_e-40
    st.at(sp_e - 32) = 0x2222;
    st.at(sp_e - 40) = k.RN;
    // B: sub 0x10 -> sp_e-56; call C -> ret at sp_e-64
    st.at(sp_e - 64) = k.R2;
    st.write(k.mem);
    uint64_t sp = sp_e - 64;

    // Prologue analysis finds NOORC's CFA (sp+16 after the call).
    auto u = k.unwinder();
    auto f = u.unwind(on_cpu(C, sp));
    ASSERT_GE(f.size(), 4u) << f.back().stop_text();
    EXPECT_EQ(f[2].pc, k.RN);
    EXPECT_EQ(f[3].method, UnwindMethod::prologue);
    EXPECT_EQ(f[3].pc, k.R1);
    EXPECT_EQ(f[3].confidence, Confidence::medium);
    EXPECT_TRUE(reached_base(f)) << f.back().stop_text();
    EXPECT_LE(f.back().confidence, Confidence::medium);  // after a guess, never high again

    // Without prologue analysis: the validated scan finds R1.
    UnwinderOptions o;
    o.prologue = false;
    o.frame_pointers = false;
    auto u2 = k.unwinder(o);
    f = u2.unwind(on_cpu(C, sp));
    ASSERT_GE(f.size(), 4u) << f.back().stop_text();
    EXPECT_EQ(f[3].method, UnwindMethod::stack_scan);
    EXPECT_EQ(f[3].confidence, Confidence::low);
    EXPECT_EQ(f[3].pc, k.R1);
    EXPECT_TRUE(reached_base(f));

    // Nothing at all: stop with the reasons of each method.
    o.scan_fallback = false;
    auto u3 = k.unwinder(o);
    f = u3.unwind(on_cpu(C, sp));
    ASSERT_EQ(f.size(), 3u);
    EXPECT_EQ(f.back().stop, StopReason::no_unwind_info);
    std::printf("%s\n", f.back().stop_text().c_str());
}

TEST(Unwind, ScanLabelsReturnAddresses) {
    Kernel k;
    Stack st(S, STACK_SIZE);
    uint64_t sp_e = S + STACK_SIZE - 0x40;
    uint64_t sp = good_stack(k, st, sp_e);
    st.at(sp - 0x40) = k.R1;      // stale: below the initial sp
    st.at(sp_e - 32) = k.RN;      // live, but no frame's return address
    st.at(sp - 0x80) = T + 0x3;   // not after a call
    st.write(k.mem);
    auto u = k.unwinder();
    auto f = u.unwind(on_cpu(C, sp));
    auto words = u.scan(on_cpu(C, sp), f);
    std::map<uint64_t, StackWord::Where> got;
    for (const auto& w : words) got[w.slot] = w.where;
    EXPECT_EQ(got.size(), 5u);
    EXPECT_EQ(got[sp - 0x40], StackWord::Where::stale);
    EXPECT_EQ(got[sp_e - 32], StackWord::Where::live);
    EXPECT_EQ(got[sp], StackWord::Where::frame);
    EXPECT_EQ(got[sp_e - 24], StackWord::Where::frame);
    EXPECT_EQ(got[sp_e - 8], StackWord::Where::frame);
    EXPECT_FALSE(got.count(sp - 0x80));
}

namespace {

// What every unwind must satisfy, whatever the input.
void check_invariants(const std::vector<Frame>& f, size_t max_frames) {
    ASSERT_FALSE(f.empty());
    ASSERT_LE(f.size(), max_frames);
    EXPECT_NE(f.back().stop, StopReason::none);
    for (size_t i = 0; i + 1 < f.size(); ++i) {
        EXPECT_EQ(f[i].stop, StopReason::none);
        if (f[i].stack == f[i + 1].stack) {
            EXPECT_LT(f[i].sp, f[i + 1].sp) << "frame " << i;
        }
    }
}

}  // namespace

// Random ORC tables (garbage entries, registers, types, offsets) over random
// stacks: the unwind always ends, within bounds, sp increasing per stack.
TEST(Unwind, RandomTablesAndStacksAreBounded) {
    std::mt19937_64 rng(7);
    size_t stops[16] = {};
    for (int iter = 0; iter < 300; ++iter) {
        Entries e;
        for (uint64_t ip = T; ip < T + 0x400; ip += 1 + rng() % 24) {
            std::array<uint8_t, 6> raw;
            for (auto& b : raw) b = static_cast<uint8_t>(rng());
            // Keep offsets small half of the time, so that some unwinds go on.
            if (rng() % 2) {
                int16_t off = static_cast<int16_t>(8 * (rng() % 8));
                memcpy(&raw[0], &off, 2);
            }
            e.push_back({ip, raw});
        }
        Kernel k(e);
        Stack st(S, STACK_SIZE), irq(IS, 0x4000);
        const uint64_t pcs[] = {k.R0, k.R1, k.R2, k.RI, k.RN, C, T + 0x3f0};
        for (auto* s : {&st, &irq})
            for (auto& w : s->words) {
                switch (rng() % 4) {
                    case 0: w = pcs[rng() % 7]; break;
                    case 1: w = S + (rng() % STACK_SIZE); break;
                    case 2: w = IS + (rng() % 0x4000); break;
                    default: w = rng(); break;
                }
            }
        st.write(k.mem, S + 0x1000 * (rng() % 4));  // one page missing
        irq.write(k.mem);
        UnwinderOptions o;
        o.max_frames = 64;
        auto u = k.unwinder(o);
        u.set_cpu_stacks({{IS, 0x4000, StackKind::irq, 0, "irq"}});
        UnwindStart s = on_cpu(pcs[rng() % 7], (rng() % 2 ? S : IS) + 8 * (rng() % 0x800), rng());
        s.pc_exact = rng() % 2;
        auto f = u.unwind(s);
        check_invariants(f, o.max_frames);
        stops[static_cast<unsigned>(f.back().stop)]++;
        auto words = u.scan(s, f);
        (void)words;
    }
    std::printf("stops over 300 random cases:");
    for (unsigned i = 0; i < 16; ++i)
        if (stops[i]) std::printf(" %s %zu;", to_string(static_cast<StopReason>(i)), stops[i]);
    std::printf("\n");
}
