// A live kernel's physical memory (kernel/linux/live_physical, e820): over a
// small memory fixture, and over a lab dump's virtual memory, where every
// answer must be the dump's own.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "kernel/linux/e820.h"
#include "kernel/linux/live_physical.h"
#include "lab_system.h"
#include "memory_fixture.h"
#include "vmcore/amd64_page_walk.h"

namespace {

using kq::test::FixtureMemory;
using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

// The layouts of the kernel's packed e820 structures, as DWARF gives them.
class E820Types : public kq::Types {
public:
    std::optional<uint64_t> offset(std::string_view type, std::string_view member) override {
        static const std::map<std::pair<std::string_view, std::string_view>, uint64_t> off{
            {{"e820_table", "nr_entries"}, 0}, {{"e820_table", "entries"}, 4},
            {{"e820_entry", "addr"}, 0},       {{"e820_entry", "size"}, 8},
            {{"e820_entry", "type"}, 16}};
        auto it = off.find({type, member});
        return it == off.end() ? std::nullopt : std::optional<uint64_t>(it->second);
    }
    std::optional<uint64_t> member_size(std::string_view type, std::string_view member) override {
        if (type == "e820_table" && member == "entries") return 20 * 8;
        return std::nullopt;
    }
    std::optional<uint64_t> size(std::string_view type) override {
        return type == "e820_entry" ? std::optional<uint64_t>(20) : std::nullopt;
    }
    std::optional<int64_t> enumerator(std::string_view name) override {
        if (name == "E820_TYPE_RAM") return 1;
        if (name == "E820_TYPE_RESERVED") return 2;
        if (name == "E820_TYPE_RESERVED_KERN") return 128;
        return std::nullopt;
    }
};

constexpr uint64_t kTable = 0xffffffff82000000ull;

void put_table(FixtureMemory& mem, const std::vector<std::tuple<uint64_t, uint64_t, uint32_t>>& entries) {
    std::vector<uint8_t> b(4 + 20 * entries.size());
    const uint32_t nr = static_cast<uint32_t>(entries.size());
    memcpy(b.data(), &nr, 4);
    for (size_t i = 0; i < entries.size(); ++i) {
        const auto& [addr, size, type] = entries[i];
        memcpy(b.data() + 4 + 20 * i, &addr, 8);
        memcpy(b.data() + 4 + 20 * i + 8, &size, 8);
        memcpy(b.data() + 4 + 20 * i + 16, &type, 4);
    }
    mem.put(kTable, b.data(), b.size());
}

TEST(E820, RamAndKernelReservedRamSortedAndMerged) {
    FixtureMemory mem;
    E820Types types;
    put_table(mem, {{0x100000, 0x700000, 1},      // RAM
                    {0x0, 0x1000, 2},             // reserved (the BIOS's first page)
                    {0x1000, 0x9e000, 1},         // low RAM, listed out of order
                    {0x800000, 0x1000, 128},      // setup_data the kernel keeps, inside RAM
                    {0x801000, 0x7000000, 1},
                    {0xfeffc000, 0x4000, 2}});
    EXPECT_EQ(kq::e820_ram(mem, types, kTable), (Ranges{{0x1000, 0x9f000}, {0x100000, 0x7801000}}));
}

TEST(E820, UnreadableOrImpossibleTablesAreErrors) {
    E820Types types;
    FixtureMemory none;
    EXPECT_THROW(kq::e820_ram(none, types, kTable), kq::Error);
    FixtureMemory reserved_only;
    put_table(reserved_only, {{0, 0x1000, 2}});
    EXPECT_THROW(kq::e820_ram(reserved_only, types, kTable), kq::Error);
    FixtureMemory too_many;  // more entries than the array holds
    put_table(too_many, std::vector<std::tuple<uint64_t, uint64_t, uint32_t>>(9, {0, 0x1000, 1}));
    EXPECT_THROW(kq::e820_ram(too_many, types, kTable), kq::Error);
}

// Physical memory of 1 MiB behind a direct map, with page tables mapping
// one 4 KiB page and one 2 MiB page.
struct SmallMachine {
    static constexpr uint64_t kDirect = 0xffff888000000000ull;
    static constexpr uint64_t kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000, kPt = 0x4000;
    static constexpr uint64_t kVa4k = 0xffffc90000005000ull;   // -> 0x7000
    static constexpr uint64_t kVa2m = 0xffffc90000200000ull;   // -> 0x400000..0x600000 (only partly RAM)
    FixtureMemory mem;

    SmallMachine() {
        std::vector<uint8_t> ram(0x100000);
        for (size_t i = 0; i < ram.size(); i += 8) {
            const uint64_t v = i * 3;
            memcpy(ram.data() + i, &v, 8);
        }
        auto entry = [&](uint64_t table, uint64_t va, int level, uint64_t value) {
            const uint64_t index = (va >> (12 + 9 * (level - 1))) & 0x1ff;
            memcpy(ram.data() + table + 8 * index, &value, 8);
        };
        for (uint64_t t : {kPml4, kPdpt, kPd, kPt}) memset(ram.data() + t, 0, 0x1000);
        entry(kPml4, kVa4k, 4, kPdpt | kq::amd64::kPresent);
        entry(kPdpt, kVa4k, 3, kPd | kq::amd64::kPresent);
        entry(kPd, kVa4k, 2, kPt | kq::amd64::kPresent);
        entry(kPt, kVa4k, 1, 0x7000 | kq::amd64::kPresent | (1ull << 63));  // NX is not part of the frame
        entry(kPd, kVa2m, 2, 0x400000 | kq::amd64::kPresent | kq::amd64::kLargePage);
        // The direct map leaves page 0x9000 out (as the kernel does for pages it hides).
        mem.put(kDirect, ram.data(), 0x9000);
        mem.put(kDirect + 0xa000, ram.data() + 0xa000, ram.size() - 0xa000);
    }
};

TEST(LivePhysical, ReadsThroughTheDirectMapAndWalksThePageTables) {
    SmallMachine m;
    kq::LivePhysical p(m.mem, SmallMachine::kDirect, SmallMachine::kPml4, {{0, 0x100000}});
    EXPECT_EQ(p.memory_ranges(), (Ranges{{0, 0x100000}}));
    uint64_t v = 0;
    ASSERT_EQ(p.read_phys(0x7010, &v, 8), 8u);
    EXPECT_EQ(v, 0x7010u * 3);
    EXPECT_EQ(p.to_phys(SmallMachine::kVa4k + 0x10), 0x7010u);
    EXPECT_EQ(p.to_phys(SmallMachine::kVa2m + 0x1234), 0x401234u);
    EXPECT_EQ(p.to_phys(SmallMachine::kVa4k + 0x1000), std::nullopt);  // not mapped
    EXPECT_EQ(p.to_phys(0x0000900000000000ull), std::nullopt);          // not canonical
    // A page left out of the direct map is a hole: reads stop short there.
    std::vector<uint8_t> b(0x3000);
    EXPECT_EQ(p.read_phys_bulk(0x8000, b.data(), b.size()), 0x1000u);
    EXPECT_EQ(p.read_phys_bulk(0xa000, b.data(), b.size()), b.size());
}

// Over a lab dump read as a live kernel is (virtual memory only), the live
// view must find what the dump itself says.
TEST(LivePhysicalLab, AgreesWithTheDump) {
    KQ_NEED_LAB();
    kq::LinuxSystem& sys = kq::test::lab_system("kaslr.elf");
    kq::Dump& dump = sys.dump();
    kq::LinuxKernel& k = sys.kernel();
    auto live = kq::LivePhysical::open(k);

    // The e820 RAM is memory the dump holds.
    const Ranges ram = live->memory_ranges(), held = dump.memory_ranges();
    ASSERT_FALSE(ram.empty());
    uint64_t total = 0;
    for (const auto& [a, b] : ram) {
        total += b - a;
        bool inside = false;
        for (const auto& [c, d] : held) inside |= a >= c && b <= d;
        EXPECT_TRUE(inside) << std::hex << a << "-" << b;
    }
    EXPECT_GT(total, 100ull << 20);

    std::vector<uint64_t> addrs{k.symbol("_text"), k.symbol("init_task"), k.symbol("jiffies")};
    for (const auto& t : sys.threads())
        if (t.stack_base) addrs.push_back(t.stack_base + 0x1008);
    for (const auto& m : sys.modules())
        for (const auto& r : m.ranges) addrs.push_back(r.start + r.size / 2);
    for (const auto& t : sys.threads()) addrs.push_back(t.task);  // the direct map
    for (uint64_t a : addrs) {
        const auto pa = dump.to_phys(a);
        ASSERT_TRUE(pa.has_value()) << std::hex << a;
        EXPECT_EQ(live->to_phys(a), pa) << std::hex << a;
    }

    std::vector<uint8_t> a(1 << 20), b(1 << 20);
    const uint64_t at = ram.back().first + 0x100000;
    ASSERT_EQ(live->read_phys_bulk(at, a.data(), a.size()), a.size());
    ASSERT_EQ(dump.read_phys(at, b.data(), b.size()), b.size());
    EXPECT_EQ(a, b);
}

}  // namespace
