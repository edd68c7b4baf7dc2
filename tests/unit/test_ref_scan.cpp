// The raw reference scan over synthetic physical memory.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "inuse/ref_scan.h"

namespace kq {
namespace {

constexpr uint64_t kMod = 0xffffffffc0300000;

struct Memory {
    std::vector<uint64_t> words = std::vector<uint64_t>(4 * 4096 / 8);  // 4 pages at physical 0
    uint64_t hole_page = ~0ull;  // reads stop short there
    size_t read(uint64_t pa, void* buf, size_t len) const {
        size_t n = 0;
        while (n < len && pa + n < words.size() * 8 && (pa + n) / 4096 != hole_page) n += 8;
        std::memcpy(buf, reinterpret_cast<const char*>(words.data()) + pa, n);
        return n;
    }
};

RefScanRequest request(const Memory& m) {
    RefScanRequest r;
    r.read_phys = [&m](uint64_t pa, void* b, size_t n) { return m.read(pa, b, n); };
    r.memory = {{0, m.words.size() * 8}};
    r.targets = {{kMod, kMod + 0x1000}, {kMod + 0x3000, kMod + 0x4000}};
    return r;
}

TEST(RefScan, FindsWordsInTheTargetRangesOnly) {
    Memory m;
    m.words[3] = kMod + 0x10;          // in the first range
    m.words[600] = kMod + 0x3008;      // in the second
    m.words[601] = kMod + 0x2000;      // between the ranges
    m.words[602] = kMod + 0x4000;      // just past the end
    m.words[603] = 0xffffffff81000000;  // kernel text
    auto r = scan_refs(request(m));
    ASSERT_EQ(r.hits.size(), 2u);
    EXPECT_EQ(r.hits[0].phys, 3u * 8);
    EXPECT_EQ(r.hits[1].value, kMod + 0x3008);
    EXPECT_EQ(r.bytes_scanned, m.words.size() * 8);
}

TEST(RefScan, SkipsTheTargetsOwnPagesAndCountsHoles) {
    Memory m;
    m.words[10] = kMod;          // page 0: the module's own page, skipped
    m.words[1024 + 1] = kMod;    // page 2: unreadable
    m.words[1536] = kMod + 8;    // page 3: found
    m.hole_page = 2;
    auto req = request(m);
    req.skip_pages = {0};
    auto r = scan_refs(req);
    ASSERT_EQ(r.hits.size(), 1u);
    EXPECT_EQ(r.hits[0].phys, 1536u * 8);
    EXPECT_EQ(r.bytes_unreadable, 4096u);
}

TEST(RefScan, StopsAtMaxHits) {
    Memory m;
    for (size_t i = 0; i < 100; ++i) m.words[i] = kMod + i;
    auto req = request(m);
    req.max_hits = 10;
    auto r = scan_refs(req);
    EXPECT_EQ(r.hits.size(), 10u);
    EXPECT_TRUE(r.truncated);
}

}  // namespace
}  // namespace kq
