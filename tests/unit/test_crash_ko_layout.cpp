// ko_core_layout against the kernel's own placement: every live module of
// the lab dumps has its sections where the layout puts them, relative to
// its core allocation.
#include <gtest/gtest.h>

#include "kernel/linux/crash_ko_layout.h"
#include "lab_system.h"

namespace kq {
namespace {

class KoLayoutOfLive : public ::testing::TestWithParam<const char*> {};

TEST_P(KoLayoutOfLive, SectionsWhereTheKernelPutThem) {
    KQ_NEED_LAB();
    LinuxSystem& sys = test::lab_system(GetParam());
    size_t modules = 0, sections = 0;
    for (const Module& m : sys.modules()) {
        if (m.ko_path.empty()) continue;
        uint64_t base = 0, text = 0, end = 0;
        for (const auto& r : m.ranges) {
            if (r.what == "text") base = r.start, text = r.size;
            if (r.what.rfind("init ", 0) != 0) end = std::max(end, r.start + r.size);
        }
        ASSERT_NE(base, 0u) << m.name;
        auto ko = ElfImage::open(m.ko_path);
        KoLayout L = ko_core_layout(*ko);
        EXPECT_EQ(L.text_size, text) << m.name;
        // The core allocation also holds the module's symbol tables, after the sections.
        EXPECT_LE(base + L.size, end) << m.name;
        for (const auto& ks : m.sections) {
            // Init sections, and the symbol tables the loader copies into the
            // init allocation (their core copy is not a section), are not placed.
            if (ks.name.rfind(".init", 0) == 0 || ks.name == ".symtab" || ks.name == ".strtab") continue;
            const ElfSection* s = ko->section(ks.name);
            ASSERT_NE(s, nullptr) << m.name << " " << ks.name;
            ASSERT_TRUE(L.offset.count(s->index)) << m.name << " " << ks.name << " not placed";
            EXPECT_EQ(base + L.offset.at(s->index), ks.addr) << m.name << " " << ks.name;
            ++sections;
        }
        ++modules;
    }
    EXPECT_GE(modules, 5u);  // deferred.elf has 5 scenario modules
    EXPECT_GE(sections, 50u);
}

INSTANTIATE_TEST_SUITE_P(LabDumps, KoLayoutOfLive, ::testing::Values("kaslr.elf", "deferred.elf"));

}  // namespace
}  // namespace kq
