// The verdict from evidence and coverage (inuse/): never SAFE with a gap.
#include <gtest/gtest.h>

#include "inuse/report.h"

namespace kq {
namespace {

Evidence ev(Severity s) { return Evidence{"x", s, "subject", 0x1000, "", 0, "", {}}; }
Coverage full(const char* p) { return {p, "all", true, ""}; }
Coverage gap(const char* p) { return {p, "some", false, "could not read"}; }

TEST(Verdict, SafeOnlyWithNothingAndFullCoverage) {
    EXPECT_EQ(decide({}, {full("a"), full("b")}, nullptr), Verdict::safe);
    EXPECT_EQ(decide({ev(Severity::advisory)}, {full("a")}, nullptr), Verdict::safe);
    EXPECT_EQ(decide({}, {full("a"), gap("b")}, nullptr), Verdict::unknown);
}

TEST(Verdict, BlockingIsUnsafeEvenWithGaps) {
    std::vector<std::string> why;
    EXPECT_EQ(decide({ev(Severity::blocking), ev(Severity::refused_by_kernel)}, {gap("a")}, &why), Verdict::unsafe);
    ASSERT_GE(why.size(), 2u);
    EXPECT_NE(why.back().find("not covered: a"), std::string::npos);
}

TEST(Verdict, RefusedIsBusyOnlyWithFullCoverage) {
    EXPECT_EQ(decide({ev(Severity::refused_by_kernel)}, {full("a")}, nullptr), Verdict::busy);
    EXPECT_EQ(decide({ev(Severity::refused_by_kernel)}, {gap("a")}, nullptr), Verdict::unknown);
}

TEST(Verdict, AnalyzeClassifiesThreadsAccountingAndKernelRefs) {
    Module m;
    m.name = "kq_x";
    m.state = "Live";
    m.refcount = 0;
    m.ranges = {{0xffffffffc0000000, 0x1000, "text"}, {0xffffffffc0002000, 0x1000, "data"}};
    Thread in_mod, elsewhere;
    in_mod.id = 7;
    in_mod.name = "in";
    elsewhere.id = 8;
    elsewhere.name = "out";
    auto frame = [](uint64_t pc, bool ret, StopReason stop = StopReason::none) {
        Frame f;
        f.pc = pc;
        f.return_address = ret;
        f.stop = stop;
        return f;
    };
    InuseInput in;
    in.module = &m;
    in.tasks_total = 2;
    in.stacks.push_back({&in_mod,
                         {frame(0xffffffff81000010, false), frame(0xffffffffc0000040, true),
                          frame(0xffffffff81000100, true, StopReason::end_of_stack)},
                         {0xffffffffc0000080},
                         true});
    in.stacks.push_back({&elsewhere, {frame(0xffffffff81000010, false, StopReason::end_of_stack)}, {}, true});
    KernelRef timer;
    timer.kind = RefKind::timer;
    timer.func = 0xffffffff81000200;   // a kernel function ...
    timer.object = 0xffffffffc0002010;  // ... on a timer that lives in the module
    KernelRef other;
    other.kind = RefKind::notifier;
    other.func = 0xffffffff81000300;
    in.survey.refs = {timer, other};
    in.survey.coverage = {full("timers")};
    Report r = analyze(in);
    ASSERT_EQ(r.evidence.size(), 3u);
    EXPECT_EQ(r.evidence[0].kind, "thread_frame");
    EXPECT_EQ(r.evidence[0].tasks, std::vector<int64_t>{7});
    EXPECT_EQ(r.evidence[1].kind, "timer");
    EXPECT_EQ(r.evidence[1].address, 0xffffffffc0002010u);
    EXPECT_EQ(r.evidence[2].kind, "stack_word");
    EXPECT_EQ(r.evidence[2].severity, Severity::advisory);
    EXPECT_EQ(r.verdict, Verdict::unsafe);
    EXPECT_TRUE(r.coverage[0].complete);  // both stacks reached their base
}

TEST(Verdict, AnIncompleteStackIsAGap) {
    Module m;
    m.name = "kq_x";
    m.state = "Live";
    Thread t;
    t.id = 1;
    Frame f;
    f.pc = 0xffffffff81000010;
    f.stop = StopReason::no_unwind_info;
    InuseInput in;
    in.module = &m;
    in.tasks_total = 1;
    in.stacks.push_back({&t, {f}, {}, true});
    Report r = analyze(in);
    EXPECT_EQ(r.verdict, Verdict::unknown);
    EXPECT_FALSE(r.coverage[0].complete);
}

}  // namespace
}  // namespace kq
