#include <gtest/gtest.h>

#include "kernel/list_walk.h"
#include "memory_fixture.h"

using kq::test::FixtureMemory;

// Nodes at 0x1000, 0x2000, ... with the list_head 8 bytes into each entry.
static void link(FixtureMemory& m, uint64_t head, std::vector<uint64_t> nodes) {
    uint64_t prev = head;
    for (uint64_t n : nodes) {
        m.put_u64(prev, n);
        prev = n;
    }
    m.put_u64(prev, head);
}

TEST(ListWalk, VisitsEveryEntryOnce) {
    FixtureMemory m;
    link(m, 0x100, {0x1008, 0x2008, 0x3008});
    std::vector<uint64_t> seen;
    auto r = kq::walk_list(m, 0x100, 8, [&](uint64_t e) { seen.push_back(e); return true; });
    EXPECT_TRUE(r.complete());
    EXPECT_EQ(seen, (std::vector<uint64_t>{0x1000, 0x2000, 0x3000}));
}

TEST(ListWalk, EmptyList) {
    FixtureMemory m;
    m.put_u64(0x100, 0x100);
    auto r = kq::walk_list(m, 0x100, 0, [](uint64_t) { return true; });
    EXPECT_TRUE(r.complete());
    EXPECT_EQ(r.count, 0u);
}

TEST(ListWalk, CycleNotThroughHeadStops) {
    FixtureMemory m;
    m.put_u64(0x100, 0x1000);
    m.put_u64(0x1000, 0x2000);
    m.put_u64(0x2000, 0x1000);  // loops without returning to the head
    auto r = kq::walk_list(m, 0x100, 0, [](uint64_t) { return true; });
    EXPECT_FALSE(r.complete());
    EXPECT_EQ(r.count, 2u);
    EXPECT_NE(r.problem.find("loops"), std::string::npos);
}

TEST(ListWalk, UnreadableAndNullPointersStop) {
    FixtureMemory m;
    m.put_u64(0x100, 0x1000);  // 0x1000 itself is not readable
    auto r = kq::walk_list(m, 0x100, 0, [](uint64_t) { return true; });
    EXPECT_EQ(r.problem, "unreadable list pointer");
    m.put_u64(0x1000, 0);
    r = kq::walk_list(m, 0x100, 0, [](uint64_t) { return true; });
    EXPECT_EQ(r.problem, "NULL list pointer");
}

TEST(ListWalk, LimitBoundsLongLists) {
    FixtureMemory m;
    std::vector<uint64_t> nodes;
    for (int i = 1; i <= 50; ++i) nodes.push_back(0x10000ull * i);
    link(m, 0x100, nodes);
    auto r = kq::walk_list(m, 0x100, 0, [](uint64_t) { return true; }, 10);
    EXPECT_FALSE(r.complete());
    EXPECT_EQ(r.count, 10u);
}
