// The guarded unload's decisions (inuse/unload_policy): at the entry, at the
// free, and when a quiesced module has drained.
#include <gtest/gtest.h>

#include "inuse/unload_policy.h"

namespace kq {
namespace {

Evidence ev(const char* kind, Severity s, std::vector<int64_t> tasks = {}) {
    return Evidence{kind, s, "subject", 0x1000, "", 0, "", std::move(tasks)};
}

Report report(std::vector<Evidence> e, bool full = true) {
    Report r;
    r.module = "kq_x";
    r.evidence = std::move(e);
    r.coverage = {{"threads", "all", true, ""}, {"timers", "all", full, full ? "" : "could not read"}};
    r.verdict = decide(r.evidence, r.coverage, &r.reasons);
    return r;
}

bool user(int64_t tid) { return tid >= 100; }  // tasks >= 100 are user tasks here

TEST(UnloadPolicy, WithoutForceOnlySafeProceeds) {
    EXPECT_TRUE(decide_unload_entry(report({}), false, false, user).proceed);
    EXPECT_TRUE(decide_unload_entry(report({ev("memory_ref", Severity::advisory)}), false, false, user).proceed);
    EXPECT_FALSE(decide_unload_entry(report({ev("refcount", Severity::refused_by_kernel)}), false, false, user).proceed);
    EXPECT_FALSE(decide_unload_entry(report({ev("timer", Severity::blocking)}), false, false, user).proceed);
    auto gap = decide_unload_entry(report({}, false), false, false, user);
    EXPECT_FALSE(gap.proceed);
    EXPECT_NE(gap.reasons.front().find("UNKNOWN"), std::string::npos);
}

TEST(UnloadPolicy, ForceLeavesToTheExitWhatItCanUndo) {
    auto s = decide_unload_entry(report({ev("timer", Severity::blocking), ev("refcount", Severity::refused_by_kernel),
                                         ev("thread_frame", Severity::blocking, {5})}),
                                 true, false, user);
    EXPECT_TRUE(s.proceed);
    EXPECT_NE(s.reasons.at(1).find("2 blocking uses are left to the module's exit"), std::string::npos);
}

TEST(UnloadPolicy, ForceRefusedForWhatNoExitCanUndo) {
    for (auto e : {ev("thread_frame", Severity::blocking, {5, 123}), ev("open_file", Severity::blocking),
                   ev("holder", Severity::refused_by_kernel)}) {
        auto s = decide_unload_entry(report({e}), true, false, user);
        EXPECT_FALSE(s.proceed) << e.kind;
        EXPECT_NE(s.reasons.at(1).find("no exit function can undo " + e.kind), std::string::npos);
    }
}

TEST(UnloadPolicy, FreeGuardedByAnythingBlocking) {
    EXPECT_TRUE(decide_free(report({ev("refcount", Severity::refused_by_kernel), ev("module_state", Severity::refused_by_kernel)})).proceed);
    auto s = decide_free(report({ev("timer", Severity::blocking)}));
    EXPECT_FALSE(s.proceed);
    EXPECT_NE(s.reasons.front().find("still reaching into it: timer"), std::string::npos);
    // A provider that could have found something blocking did not cover everything.
    auto gap = decide_free(report({}, false));
    EXPECT_FALSE(gap.proceed);
    EXPECT_NE(gap.reasons.front().find("could not tell: timers"), std::string::npos);
}

TEST(UnloadPolicy, DrainedWhenTheUsersAreGone) {
    std::vector<std::string> still;
    EXPECT_TRUE(drained(report({ev("module_state", Severity::refused_by_kernel), ev("stack_word", Severity::advisory),
                                ev("device", Severity::blocking), ev("thread_frame", Severity::blocking, {5})}),
                        user, &still));
    EXPECT_TRUE(still.empty());
    EXPECT_FALSE(drained(report({ev("refcount", Severity::refused_by_kernel), ev("open_file", Severity::blocking),
                                 ev("wait_queue", Severity::blocking, {150})}),
                         user, &still));
    EXPECT_EQ(still.size(), 3u);
}

TEST(UnloadPolicy, AQuiescedModuleProceedsOnceDrained) {
    const Report own = report({ev("module_state", Severity::refused_by_kernel), ev("device", Severity::blocking)});
    EXPECT_FALSE(decide_unload_entry(own, false, false, user).proceed);
    EXPECT_TRUE(decide_unload_entry(own, false, true, user).proceed);
    EXPECT_FALSE(decide_unload_entry(report({ev("refcount", Severity::refused_by_kernel)}), false, true, user).proceed);
}

}  // namespace
}  // namespace kq
