// vmcore/kcore: /proc/kcore's layout on small files of the same shape
// (virtual PT_LOADs, physical addresses only for the direct map and the
// image, an empty NT_PRSTATUS, VMCOREINFO). The real /proc/kcore is read in
// tests/live/test_kcore.py, inside a guest.
#include <gtest/gtest.h>

#include <cstring>

#include "dump_fixture.h"
#include "vmcore/kcore.h"

using namespace kqtest;

namespace {

constexpr uint64_t kText = 0xffffffff9a200000ull, kTextPhys = 0x6e800000;
constexpr uint64_t kModules = 0xffffffffc0000000ull;
constexpr uint64_t kDirect = 0xffff892480000000ull;
constexpr uint64_t kNone = ~0ull;

ElfCoreSpec kcore_spec() {
    ElfCoreSpec s;
    s.vmcoreinfo = "OSRELEASE=6.1.0-fixture\nKERNELOFFSET=19200000\n";
    s.cpus = {FixtureCpu{}};  // kcore's NT_PRSTATUS is all zeros
    // Order as the kernel lists them: text, vmalloc/modules, RAM.
    s.segments.push_back({kTextPhys, kText, pattern_page(1), 0});
    s.segments.push_back({kNone, kModules, pattern_page(2), 0});
    Bytes ram = pattern_page(3);
    const Bytes ram2 = pattern_page(4);
    ram.insert(ram.end(), ram2.begin(), ram2.end());
    s.segments.push_back({0x100000, kDirect + 0x100000, ram, 0});
    return s;
}

uint64_t word(const void* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

std::string open_error(const std::string& path) {
    try {
        kq::Kcore::open(path);
    } catch (const kq::Error& e) {
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        return e.what();
    }
    return "(opened)";
}

}  // namespace

TEST(Kcore, ReadsVirtualSegmentsAndTheirPhysicalAddresses) {
    TempDir dir;
    auto k = kq::Kcore::open(dir.write("kcore", make_elf_core(kcore_spec())));
    EXPECT_TRUE(k->live());
    EXPECT_TRUE(k->cpus().empty());
    EXPECT_EQ(k->vmcoreinfo_value("OSRELEASE"), "6.1.0-fixture");
    EXPECT_EQ(k->format(), "/proc/kcore");
    ASSERT_EQ(k->segments().size(), 3u);

    uint8_t buf[64];
    ASSERT_EQ(k->read(kText + 0x10, buf, 8), 8u);
    EXPECT_EQ(word(buf), (uint64_t(1) << 32) | 0x10);
    ASSERT_EQ(k->read(kModules + 0x28, buf, 8), 8u);
    EXPECT_EQ(word(buf), (uint64_t(2) << 32) | 0x28);
    // Across two pages of one segment.
    ASSERT_EQ(k->read(kDirect + 0x100ffc, buf, 8), 8u);
    // The end of a segment ends a read; nothing lies between segments.
    EXPECT_EQ(k->read(kModules + kFixturePageSize - 8, buf, 16), 8u);
    EXPECT_EQ(k->read(kDirect, buf, 8), 0u);
    EXPECT_EQ(k->read(0xffffffffffffff00ull, buf, 8), 0u);

    // Physical memory: the direct map's and the image's segments.
    ASSERT_EQ(k->read_phys(0x101000 + 0x30, buf, 8), 8u);
    EXPECT_EQ(word(buf), (uint64_t(4) << 32) | 0x30);
    ASSERT_EQ(k->read_phys(kTextPhys + 0x40, buf, 8), 8u);
    EXPECT_EQ(word(buf), (uint64_t(1) << 32) | 0x40);
    EXPECT_EQ(k->read_phys(0x200000, buf, 8), 0u);
    EXPECT_EQ(k->to_phys(kDirect + 0x101008), 0x101008u);
    EXPECT_EQ(k->to_phys(kText + 8), kTextPhys + 8);
    EXPECT_FALSE(k->to_phys(kModules));
    const auto ranges = k->memory_ranges();
    ASSERT_EQ(ranges.size(), 2u);
    EXPECT_EQ(ranges[0], std::make_pair(uint64_t(0x100000), uint64_t(0x102000)));
    EXPECT_EQ(ranges[1].first, kTextPhys);
}

TEST(Kcore, RefusesWhatIsNotAKcore) {
    TempDir dir;
    EXPECT_NE(open_error(dir.file("missing")).find("No such file"), std::string::npos);
    EXPECT_NE(open_error(dir.write("text", Bytes{'h', 'e', 'l', 'l', 'o'})).find("cut off inside its ELF header"),
              std::string::npos);
    Bytes junk(128, 'x');
    EXPECT_NE(open_error(dir.write("junk", junk)).find("not an ELF file"), std::string::npos);

    ElfCoreSpec no_info = kcore_spec();
    no_info.vmcoreinfo.clear();
    EXPECT_NE(open_error(dir.write("noinfo", make_elf_core(no_info))).find("no VMCOREINFO"), std::string::npos);

    ElfCoreSpec arm = kcore_spec();
    arm.machine = 183;
    EXPECT_NE(open_error(dir.write("arm", make_elf_core(arm))).find("x86-64"), std::string::npos);

    // Cut inside the program headers.
    Bytes whole = make_elf_core(kcore_spec());
    whole.resize(64 + 20);
    EXPECT_NE(open_error(dir.write("cut", whole)).find("cut off"), std::string::npos);
}
