// Range lists of split functions: built here byte by byte in the DWARF 5
// .debug_rnglists encoding.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "symbols/split_function_ranges.h"
#include "vmcore/memory_source.h"

namespace kq {
namespace {

constexpr uint64_t kHot = 0xffffffff8112f810, kCold = 0xffffffff81a08969;

class RangeLists {
public:
    void addr(uint64_t a) {
        for (int i = 0; i < 8; ++i) body_.push_back(uint8_t(a >> (8 * i)));
    }
    void uleb(uint64_t v) {
        do {
            uint8_t b = v & 0x7f;
            v >>= 7;
            body_.push_back(uint8_t(b | (v ? 0x80 : 0)));
        } while (v);
    }
    void start_length(uint64_t a, uint64_t len) {
        body_.push_back(7);
        addr(a);
        uleb(len);
    }
    void start_end(uint64_t a, uint64_t b) {
        body_.push_back(6);
        addr(a);
        addr(b);
    }
    void base(uint64_t a) {
        body_.push_back(5);
        addr(a);
    }
    void offset_pair(uint64_t a, uint64_t b) {
        body_.push_back(4);
        uleb(a);
        uleb(b);
    }
    void end() { body_.push_back(0); }
    std::vector<uint8_t> section() const {
        std::vector<uint8_t> s;
        const uint32_t len = uint32_t(body_.size() + 8);
        for (int i = 0; i < 4; ++i) s.push_back(uint8_t(len >> (8 * i)));
        s.insert(s.end(), {5, 0, 8, 0, 0, 0, 0, 0});  // version 5, 8-byte addresses, no offsets
        s.insert(s.end(), body_.begin(), body_.end());
        return s;
    }

private:
    std::vector<uint8_t> body_;
};

// Decodes the (begin, end) pairs of the first table's lists.
std::vector<std::pair<uint64_t, uint64_t>> ranges(const std::vector<uint8_t>& s) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    size_t p = 12;
    auto fixed = [&] {
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= uint64_t(s[p + i]) << (8 * i);
        p += 8;
        return v;
    };
    auto uleb = [&] {
        uint64_t v = 0;
        for (unsigned sh = 0;; sh += 7) {
            uint8_t b = s[p++];
            v |= uint64_t(b & 0x7f) << sh;
            if (!(b & 0x80)) return v;
        }
    };
    uint64_t base = 0;
    while (p < s.size()) {
        switch (s[p++]) {
            case 0: break;
            case 4: { uint64_t a = uleb(), b = uleb(); out.push_back({base + a, base + b}); break; }
            case 5: base = fixed(); break;
            case 6: { uint64_t a = fixed(), b = fixed(); out.push_back({a, b}); break; }
            case 7: { uint64_t a = fixed(), l = uleb(); out.push_back({a, a + l}); break; }
        }
    }
    return out;
}

TEST(SplitFunctionRanges, ColdPartOfAFunctionCollapsesToItsHotStart) {
    RangeLists r;
    r.start_length(kHot, 0x3ad);
    r.start_length(kCold, 0x28);
    r.end();
    auto s = r.section();
    const size_t size = s.size();
    EXPECT_EQ(collapse_cold_ranges(s, {{kHot, kCold}}), 1u);
    EXPECT_EQ(s.size(), size);
    auto got = ranges(s);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0], std::make_pair(kHot, kHot + 0x3ad));
    EXPECT_EQ(got[1], std::make_pair(kHot, kHot));  // empty, inside the hot part
}

TEST(SplitFunctionRanges, StartEndAndOffsetPairEntries) {
    RangeLists r;
    r.start_end(kHot, kHot + 0x100);
    r.start_end(kCold, kCold + 0x10);
    r.end();
    r.base(kHot - 0x10);
    r.offset_pair(0x10, 0x20);                  // the hot start
    r.offset_pair(kCold - kHot + 0x10, kCold - kHot + 0x20);  // the cold start
    r.end();
    auto s = r.section();
    EXPECT_EQ(collapse_cold_ranges(s, {{kHot, kCold}}), 2u);
    auto got = ranges(s);
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(got[1], std::make_pair(kHot, kHot));
    EXPECT_EQ(got[3], std::make_pair(kHot, kHot));
}

TEST(SplitFunctionRanges, ListsWithoutTheHotStartStayAsTheyAre) {
    // A lexical block or the unit's own list: it holds the cold part but does
    // not start a range at the function's hot address.
    RangeLists r;
    r.start_length(kHot + 0x40, 0x20);
    r.start_length(kCold, 0x28);
    r.end();
    auto s = r.section();
    const auto before = s;
    EXPECT_EQ(collapse_cold_ranges(s, {{kHot, kCold}}), 0u);
    EXPECT_EQ(s, before);
}

TEST(SplitFunctionRanges, MalformedSectionsAreErrors) {
    RangeLists r;
    r.start_length(kHot, 0x3ad);
    r.end();
    auto s = r.section();
    auto bad_kind = s;
    bad_kind[12] = 0x2a;
    EXPECT_THROW(collapse_cold_ranges(bad_kind, {{kHot, kCold}}), Error);
    auto long_table = s;
    long_table[0] = 0xff;
    EXPECT_THROW(collapse_cold_ranges(long_table, {{kHot, kCold}}), Error);
    auto truncated = s;
    truncated.resize(16);
    truncated[0] = 12;  // the table ends inside the first entry's address
    EXPECT_THROW(collapse_cold_ranges(truncated, {{kHot, kCold}}), Error);
}

}  // namespace
}  // namespace kq
