// vmcore/freebsd_elf_dump: the FreeBSD amd64 full (ELF) dump of the fixture,
// its page tables found through the kernel's KPML4phys, against the
// minidump of the same machine; the 4-level walk itself.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "fixtures/fixture_files.h"
#include "freebsd_fixture.h"
#include "vmcore/amd64_page_walk.h"
#include "vmcore/freebsd_elf_dump.h"
#include "vmcore/freebsd_minidump.h"

using namespace kq::fbsdtest;
using kq::fixture::TempFile;

namespace {

kq::FreebsdElfDump& elf(const std::string& scenario = "busy") {
    static std::map<std::string, std::unique_ptr<kq::Dump>> open;
    auto& d = open[scenario];
    if (!d) d = kq::Dump::open(elf_path(scenario), kernel_options());
    return dynamic_cast<kq::FreebsdElfDump&>(*d);
}

kq::FreebsdMinidump& mini(const std::string& scenario = "busy") {
    static std::map<std::string, std::unique_ptr<kq::Dump>> open;
    auto& d = open[scenario];
    if (!d) d = kq::Dump::open(minidump_path(scenario));
    return dynamic_cast<kq::FreebsdMinidump&>(*d);
}

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const kq::Error& e) {
        return e.what();
    }
    return "";
}

kq::amd64::Walk walk(uint64_t va) {
    kq::FreebsdElfDump& d = elf();
    return kq::amd64::walk_pml4(*d.page_tables(), va, [&](uint64_t pa, uint64_t* e) {
        return d.read_phys(pa, e, sizeof *e) == sizeof *e;
    });
}

}  // namespace

TEST(FreebsdElfDump, OpensAndFindsPageTables) {
    KQ_NEED_FBSD_FIXTURE();
    kq::FreebsdElfDump& d = elf();
    EXPECT_EQ(d.format(), "FreeBSD ELF vmcore");
    EXPECT_FALSE(d.truncated());
    EXPECT_TRUE(d.vmcoreinfo().empty());
    EXPECT_EQ(d.page_tables(), Manifest().num({"pml4"}, 1));
    const auto r = d.memory_ranges();
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0], std::make_pair(uint64_t(0x1000), uint64_t(0x9f000)));
    EXPECT_EQ(r[1], std::make_pair(uint64_t(0x100000), uint64_t(16 << 20)));
}

// Without the kernel's symbols it reads physical memory only, and says why.
TEST(FreebsdElfDump, WithoutKernelSymbols) {
    KQ_NEED_FBSD_FIXTURE();
    std::vector<std::string> notes;
    kq::DumpOptions o;
    o.note = [](void* ctx, const std::string& l) { static_cast<std::vector<std::string>*>(ctx)->push_back(l); };
    o.note_ctx = &notes;
    auto d = kq::Dump::open(elf_path(), o);
    auto& fd = dynamic_cast<kq::FreebsdElfDump&>(*d);
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("KPML4phys"), std::string::npos) << notes[0];
    uint64_t word = 0;
    EXPECT_EQ(d->read(kKernbase + 0x200000, &word, sizeof word), 0u);
    EXPECT_EQ(d->read_phys(0x200000, &word, sizeof word), sizeof word);
    const std::string e = error_of([&] { fd.translate(kKernbase + 0x200000); });
    EXPECT_NE(e.find("KPML4phys"), std::string::npos) << e;

    // Told later, it translates.
    const uint64_t kpml4 = *kernel_options().kernel_symbol("KPML4phys");
    fd.find_page_tables(kpml4, kKernbase);
    EXPECT_EQ(fd.page_tables(), Manifest().num({"pml4"}, 1));
    EXPECT_EQ(d->to_phys(kKernbase + 0x200000), 0x200000u);
    // A symbol that leads nowhere: a clear error.
    EXPECT_NE(error_of([&] { fd.find_page_tables(kKernbase + (64ull << 20), kKernbase); }).find("KPML4phys"),
              std::string::npos);
}

// The 4-level walk: 2 MiB kernel pages, 4 KiB module and stack pages, the
// direct map and the large map in 1 GiB pages.
TEST(FreebsdElfDump, PageSizes) {
    KQ_NEED_FBSD_FIXTURE();
    Manifest m;
    kq::amd64::Walk w = walk(kKernbase + 0x201234);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(w.page_size, 2u << 20);
    EXPECT_EQ(w.paddr, 0x201234u);

    w = walk(m.num({"map", "module"}, 2) + 0x10);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(w.page_size, 4096u);
    EXPECT_EQ(w.paddr, m.num({"map", "module"}, 3) + 0x10);

    w = walk(kDmapBase + 0x9008);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(w.page_size, 1u << 30);
    EXPECT_EQ(w.paddr, 0x9008u);

    w = walk(m.num({"map", "largemap"}, 2) + 0x3000);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(w.page_size, 1u << 30);
    EXPECT_EQ(w.paddr, m.num({"map", "largemap"}, 3) + 0x3000);

    w = walk(m.num({"kstack_guard"}, 1));
    EXPECT_EQ(w.status, kq::amd64::Walk::NotPresent);
    EXPECT_EQ(w.level, 1);
    EXPECT_NE(kq::amd64::describe(w).find("page-table entry"), std::string::npos);

    w = walk(0x0000900000000000ull);
    EXPECT_EQ(w.status, kq::amd64::Walk::NonCanonical);
    w = walk(0x0000000000400000ull);  // user space: no level-4 entry
    EXPECT_EQ(w.status, kq::amd64::Walk::NotPresent);
    EXPECT_EQ(w.level, 4);
}

// Both forms hold the same bytes: every page of the minidump, and every
// planted structure read by its virtual address.
TEST(FreebsdElfDump, SameBytesAsMinidump) {
    KQ_NEED_FBSD_FIXTURE();
    for (const std::string scenario : {"busy", "idle"}) {
        kq::FreebsdElfDump& e = elf(scenario);
        kq::FreebsdMinidump& mdump = mini(scenario);
        std::vector<uint8_t> a(1 << 16), b(1 << 16);
        uint64_t pages = 0;
        for (const auto& [start, end] : mdump.memory_ranges()) {
            for (uint64_t pa = start; pa < end; pa += a.size()) {
                const size_t n = std::min<uint64_t>(a.size(), end - pa);
                ASSERT_EQ(e.read_phys(pa, a.data(), n), n);
                ASSERT_EQ(mdump.read_phys(pa, b.data(), n), n);
                ASSERT_EQ(std::memcmp(a.data(), b.data(), n), 0) << scenario << " physical 0x" << std::hex << pa;
            }
            pages += (end - start) / 4096;
        }
        EXPECT_GT(pages, 1000u);

        Manifest m(scenario);
        std::vector<uint64_t> vas = {kKernbase + 0x200000, m.num({"map", "module"}, 2)};
        for (const auto& l : m.all({"thread"})) vas.push_back(std::stoull(l[2], nullptr, 0));
        for (const auto& l : m.all({"proc"})) vas.push_back(std::stoull(l[1], nullptr, 0));
        for (const auto& l : m.all({"stack"})) vas.push_back(std::stoull(l[3], nullptr, 0) & ~0xfffull);
        for (const auto& l : m.all({"cc_cpu"})) vas.push_back(std::stoull(l[2], nullptr, 0));
        for (uint64_t va : vas) {
            EXPECT_EQ(e.to_phys(va), mdump.to_phys(va)) << std::hex << va;
            ASSERT_EQ(e.read(va, a.data(), 4096), 4096u) << std::hex << va;
            ASSERT_EQ(mdump.read(va, b.data(), 4096), 4096u) << std::hex << va;
            EXPECT_EQ(std::memcmp(a.data(), b.data(), 4096), 0) << std::hex << va;
        }
    }
}

// What only the full dump holds: pages a minidump leaves out.
TEST(FreebsdElfDump, PagesOnlyTheFullDumpHolds) {
    KQ_NEED_FBSD_FIXTURE();
    Manifest m;
    kq::FreebsdElfDump& d = elf();
    char text[32] = {};
    ASSERT_EQ(d.read(m.num({"free"}, 1), text, sizeof text), sizeof text);
    EXPECT_EQ(std::string(text), "kq_fbsd free page 0xf00000");
    ASSERT_EQ(d.read(m.num({"map", "nodump"}, 2), text, sizeof text), sizeof text);
    EXPECT_EQ(std::string(text), "kq_fbsd nodump");
    // Physical page 0 is in no segment.
    uint64_t word;
    const std::string e = error_of([&] { d.read_or_throw(kKernbase, &word, sizeof word); });
    EXPECT_NE(e.find("not in the dump's memory segments"), std::string::npos) << e;
}

TEST(FreebsdElfDump, Truncated) {
    KQ_NEED_FBSD_FIXTURE();
    const uint64_t size = std::filesystem::file_size(elf_path());
    {
        TempFile f(file_prefix(elf_path(), 100), "kq-fbsd-elfcut");
        std::string e;
        try {
            kq::Dump::open(f.path(), kernel_options());
        } catch (const kq::Error& x) {
            e = x.what();
        }
        EXPECT_EQ(e.rfind("truncated dump: " + f.path(), 0), 0u) << e;
    }
    TempFile f(file_prefix(elf_path(), size_t(size - (1 << 20))), "kq-fbsd-elfcut");
    std::vector<std::string> notes;
    auto d = kq::Dump::open(f.path(), kernel_options(&notes));
    auto& fd = dynamic_cast<kq::FreebsdElfDump&>(*d);
    EXPECT_TRUE(fd.truncated());
    ASSERT_FALSE(notes.empty());
    EXPECT_NE(notes[0].find("truncated dump"), std::string::npos) << notes[0];
    EXPECT_EQ(fd.read_cstr(*kernel_options().kernel_symbol("ostype")), "FreeBSD");
    uint64_t word;
    const uint64_t msgbuf = (16 << 20) - 4096;
    EXPECT_EQ(fd.read_phys(msgbuf, &word, sizeof word), 0u);
    const std::string e = error_of([&] { fd.read_phys_or_throw(msgbuf, &word, sizeof word); });
    EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

// Linux ELF vmcores still go to libkdumpfile: only "standalone" cores are FreeBSD's.
TEST(FreebsdElfDump, OnlyStandaloneCores) {
    KQ_NEED_FBSD_FIXTURE();
    auto bytes = file_prefix(elf_path(), 3 << 20);
    bytes[EI_OSABI] = ELFOSABI_NONE;
    TempFile f(bytes, "kq-fbsd-linux");
    std::vector<std::string> notes;
    kq::DumpOptions o;
    o.note = [](void* ctx, const std::string& l) { static_cast<std::vector<std::string>*>(ctx)->push_back(l); };
    o.note_ctx = &notes;
    try {
        auto d = kq::Dump::open(f.path(), o);
        EXPECT_EQ(dynamic_cast<kq::FreebsdElfDump*>(d.get()), nullptr);
    } catch (const kq::Error&) {
        // libkdumpfile may refuse it: either way not read as FreeBSD's.
    }
}
