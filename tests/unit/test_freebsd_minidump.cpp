// vmcore/freebsd_minidump: the FreeBSD amd64 minidump of the fixture
// (corefiles/freebsd): 4 KiB, 2 MiB and 1 GiB pages, the direct map, pages
// absent from the bitmap, cut-off and corrupt files.
#include <gtest/gtest.h>

#include <cstring>

#include "fixtures/fixture_files.h"
#include "freebsd_fixture.h"
#include "vmcore/freebsd_minidump.h"

using namespace kq::fbsdtest;
using kq::fixture::TempFile;

namespace {

kq::FreebsdMinidump& busy() {
    static std::unique_ptr<kq::Dump> d = kq::Dump::open(minidump_path());
    return dynamic_cast<kq::FreebsdMinidump&>(*d);
}

// The one-line kq::Error a call throws ("" if none).
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const kq::Error& e) {
        return e.what();
    }
    return "";
}

std::string open_error(const std::string& path) {
    return error_of([&] { kq::Dump::open(path); });
}

uint64_t kernel_symbol(const std::string& name) {
    static auto k = kq::ElfImage::open(kernel_path());
    const kq::ElfSymbol* s = k->symbol(name);
    if (!s) throw std::runtime_error("no symbol " + name);
    return s->value;
}

}  // namespace

TEST(FreebsdMinidump, OpensByMagic) {
    KQ_NEED_FBSD_FIXTURE();
    kq::Dump& d = busy();
    EXPECT_EQ(d.format(), "FreeBSD minidump (version 3)");
    EXPECT_FALSE(d.truncated());
    EXPECT_TRUE(d.vmcoreinfo().empty());
    EXPECT_TRUE(d.cpus().empty());
    EXPECT_EQ(busy().kernbase(), 0xfffffe0000000000ull);
    EXPECT_EQ(busy().dmapbase(), kDmapBase);
    ASSERT_EQ(busy().dump_avail().size(), 2u);
    EXPECT_EQ(busy().dump_avail()[0], std::make_pair(uint64_t(0x1000), uint64_t(0x9f000)));
    EXPECT_NE(busy().message_buffer().find("panic: kq_fbsd fixture"), std::string::npos);
}

// The kernel image: 2 MiB pages from KERNBASE, physical = virtual - KERNBASE.
TEST(FreebsdMinidump, KernelTwoMegabytePages) {
    KQ_NEED_FBSD_FIXTURE();
    kq::FreebsdMinidump& d = busy();
    const uint64_t version = kernel_symbol("version");
    EXPECT_EQ(d.to_phys(version), version - kKernbase);
    EXPECT_EQ(d.read_cstr(kernel_symbol("ostype")), "FreeBSD");
    EXPECT_EQ(d.read_cstr(version).rfind("FreeBSD 14.1-RELEASE", 0), 0u);
    // The variables the generator filled in.
    EXPECT_EQ(d.read_u64(kernel_symbol("KPML4phys")), Manifest().num({"pml4"}, 1));
    // A read across the boundary between the kernel's two 2 MiB pages.
    std::vector<uint8_t> a(64), b(64);
    ASSERT_EQ(d.read(kKernbase + 0x400000 - 32, a.data(), a.size()), a.size());
    ASSERT_EQ(d.read_phys(0x400000 - 32, b.data(), b.size()), b.size());
    EXPECT_EQ(a, b);
}

// Module pages and kernel stacks: 4 KiB pages, physically apart.
TEST(FreebsdMinidump, FourKilobytePages) {
    KQ_NEED_FBSD_FIXTURE();
    kq::FreebsdMinidump& d = busy();
    Manifest m;
    const uint64_t module = m.num({"map", "module"}, 2);
    EXPECT_EQ(d.to_phys(module), m.num({"map", "module"}, 3));
    EXPECT_EQ(d.to_phys(module + 0x123), m.num({"map", "module"}, 3) + 0x123);

    // The module's strings, where its .rodata was loaded.
    const auto rodata = m.all({"section", "kq_fbsd.ko", ".rodata.str1.1"});
    ASSERT_EQ(rodata.size(), 1u);
    std::string text(std::stoull(rodata[0][4], nullptr, 0), '\0');
    ASSERT_EQ(d.read(std::stoull(rodata[0][3], nullptr, 0), text.data(), text.size()), text.size());
    EXPECT_NE(text.find(std::string("kq_fbsd_mtx\0", 12)), std::string::npos);
    EXPECT_NE(text.find(std::string("kqslp\0", 6)), std::string::npos);

    // Every planted stack: the saved stack pointer points at the saved pc,
    // and a whole stack reads the same through its pages one by one.
    const auto stacks = m.all({"stack"});
    ASSERT_GE(stacks.size(), 10u);
    for (const auto& s : stacks) {
        const uint64_t rip = std::stoull(s[2], nullptr, 0), rsp = std::stoull(s[3], nullptr, 0);
        EXPECT_EQ(d.read_u64(rsp), rip) << "thread " << s[1];
    }
    const auto threads = m.all({"thread"});
    const uint64_t base = std::stoull(threads.back().at(6), nullptr, 0);  // td_kstack: 4 pages
    std::vector<uint8_t> whole(0x4000), paged(0x4000);
    ASSERT_EQ(d.read(base, whole.data(), whole.size()), whole.size());
    for (uint64_t off = 0; off < whole.size(); off += 4096) {
        auto pa = d.to_phys(base + off);
        ASSERT_TRUE(pa);
        ASSERT_EQ(d.read_phys(*pa, paged.data() + off, 4096), 4096u);
    }
    EXPECT_EQ(whole, paged);
    EXPECT_NE(*d.to_phys(base + 4096), *d.to_phys(base) + 4096) << "stack pages should not be contiguous";
}

// Direct-map addresses: physical + dmapbase, in both dump_avail ranges.
TEST(FreebsdMinidump, DirectMap) {
    KQ_NEED_FBSD_FIXTURE();
    kq::FreebsdMinidump& d = busy();
    Manifest m;
    for (const auto& t : m.all({"thread"})) {
        const uint64_t va = std::stoull(t[2], nullptr, 0);
        if (va < kDmapBase || va >= kKernbase) continue;
        EXPECT_EQ(d.to_phys(va), va - kDmapBase);
    }
    // The first UMA page lies below 640 KiB: bits of the first dump_avail range.
    std::vector<uint8_t> a(4096), b(4096);
    ASSERT_EQ(d.read(kDmapBase + 0x9000, a.data(), a.size()), a.size());
    ASSERT_EQ(d.read_phys(0x9000, b.data(), b.size()), b.size());
    EXPECT_EQ(a, b);
    EXPECT_NE(std::count(a.begin(), a.end(), 0), 4096) << "the UMA page holds data";
    // A process name in a direct-map proc structure.
    const auto procs = m.all({"proc"});
    ASSERT_FALSE(procs.empty());
    EXPECT_EQ(d.to_phys(std::stoull(procs.back()[1], nullptr, 0)) .value_or(0) + kDmapBase,
              std::stoull(procs.back()[1], nullptr, 0));
}

// A 1 GiB page is written as 512 2 MiB page-directory entries; it maps
// device memory, which no dump holds.
TEST(FreebsdMinidump, GigabytePage) {
    KQ_NEED_FBSD_FIXTURE();
    kq::FreebsdMinidump& d = busy();
    Manifest m;
    const uint64_t va = m.num({"map", "largemap"}, 2), pa = m.num({"map", "largemap"}, 3);
    EXPECT_EQ(d.to_phys(va), pa);
    EXPECT_EQ(d.to_phys(va + 0x12345678), pa + 0x12345678);
    uint64_t word;
    EXPECT_EQ(d.read(va, &word, sizeof word), 0u);
    EXPECT_NE(error_of([&] { d.read_or_throw(va, &word, sizeof word); }).find("outside dump_avail"),
              std::string::npos);
}

// Mapped, but its page is not in the dump: clear errors, short reads.
TEST(FreebsdMinidump, AbsentPages) {
    KQ_NEED_FBSD_FIXTURE();
    kq::FreebsdMinidump& d = busy();
    Manifest m;
    uint64_t word = 0;

    // KERNBASE maps physical page 0, which dump_avail leaves out.
    EXPECT_EQ(d.to_phys(kKernbase), 0u);
    EXPECT_EQ(d.read(kKernbase, &word, sizeof word), 0u);
    std::string e = error_of([&] { d.read_or_throw(kKernbase, &word, sizeof word); });
    EXPECT_NE(e.find("0xffffffff80000000"), std::string::npos) << e;
    EXPECT_NE(e.find("outside dump_avail"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);

    // A PG_NODUMP page and a free page: in dump_avail, absent from the bitmap.
    for (uint64_t va : {m.num({"map", "nodump"}, 2), m.num({"free"}, 1)}) {
        EXPECT_TRUE(d.to_phys(va)) << std::hex << va;
        EXPECT_EQ(d.read(va, &word, sizeof word), 0u);
        e = error_of([&] { d.read_or_throw(va, &word, sizeof word); });
        EXPECT_NE(e.find("absent from the minidump's page bitmap"), std::string::npos) << e;
        EXPECT_NE(e.find(minidump_path()), std::string::npos) << e;
    }
    e = error_of([&] { d.read_phys_or_throw(m.num({"free"}, 2), &word, sizeof word); });
    EXPECT_NE(e.find("absent from the minidump's page bitmap"), std::string::npos) << e;

    // A read that runs into an absent page stops there.
    const uint64_t last = d.memory_ranges().front().second - 4096;
    std::vector<uint8_t> buf(8192);
    EXPECT_EQ(d.read(kDmapBase + last, buf.data(), buf.size()), 4096u);
    EXPECT_EQ(d.read_phys(last, buf.data(), buf.size()), 4096u);
}

TEST(FreebsdMinidump, Unmapped) {
    KQ_NEED_FBSD_FIXTURE();
    kq::FreebsdMinidump& d = busy();
    Manifest m;
    const uint64_t guard = m.num({"kstack_guard"}, 1);
    EXPECT_FALSE(d.to_phys(guard));
    std::string e = error_of([&] { d.translate(guard); });
    EXPECT_NE(e.find("not mapped"), std::string::npos) << e;
    EXPECT_NE(e.find("page-table entry"), std::string::npos) << e;

    e = error_of([&] { d.translate(0x400000); });
    EXPECT_NE(e.find("outside the kernel address space a minidump holds"), std::string::npos) << e;
    EXPECT_FALSE(d.to_phys(0xfffffe8000000000ull - 4096 + 0x10000000000ull));  // no page directory
    uint64_t word;
    EXPECT_EQ(d.read(0x400000, &word, sizeof word), 0u);
}

TEST(FreebsdMinidump, MemoryRanges) {
    KQ_NEED_FBSD_FIXTURE();
    const auto ranges = busy().memory_ranges();
    ASSERT_FALSE(ranges.empty());
    EXPECT_EQ(ranges.front().first, 0x1000u);
    uint64_t pages = 0;
    for (size_t i = 0; i < ranges.size(); ++i) {
        EXPECT_LT(ranges[i].first, ranges[i].second);
        if (i) {
            EXPECT_LT(ranges[i - 1].second, ranges[i].first);
        }
        pages += (ranges[i].second - ranges[i].first) / 4096;
    }
    // Header, message buffer, dump_avail, bitmap, page directories, pages.
    const uint64_t size = std::filesystem::file_size(minidump_path());
    EXPECT_EQ(size % 4096, 0u);
    EXPECT_GT(size, pages * 4096);
    EXPECT_LT(size - pages * 4096, 9u << 20);
}

TEST(FreebsdMinidump, Truncated) {
    KQ_NEED_FBSD_FIXTURE();
    const std::string path = minidump_path();
    const uint64_t size = std::filesystem::file_size(path);

    // Cut inside the header, the page bitmap (after the header, 4 pages of
    // message buffer and dump_avail), the page directories.
    const std::pair<size_t, const char*> cuts[] = {
        {10, "minidump header"}, {4096 * 6 + 100, "page bitmap"}, {4096 * 100, "page directories"}};
    for (const auto& [cut, where] : cuts) {
        TempFile f(file_prefix(path, cut), "kq-fbsd-cut");
        const std::string e = open_error(f.path());
        EXPECT_EQ(e.rfind("truncated dump: " + f.path(), 0), 0u) << e;
        EXPECT_NE(e.find(where), std::string::npos) << e;
        EXPECT_EQ(e.find('\n'), std::string::npos);
    }

    // Cut among the pages: opens, says so, reads what is there.
    TempFile f(file_prefix(path, size_t(size - 100 * 4096 - 100)), "kq-fbsd-cut");
    std::vector<std::string> notes;
    kq::DumpOptions o;
    o.note = [](void* ctx, const std::string& l) { static_cast<std::vector<std::string>*>(ctx)->push_back(l); };
    o.note_ctx = &notes;
    auto d = kq::Dump::open(f.path(), o);
    EXPECT_TRUE(d->truncated());
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("truncated dump"), std::string::npos);
    auto& md = dynamic_cast<kq::FreebsdMinidump&>(*d);
    EXPECT_EQ(md.read_cstr(kernel_symbol("ostype")), "FreeBSD");
    // The last dumped page is gone.
    const uint64_t last = busy().memory_ranges().back().second - 4096;
    uint64_t word;
    EXPECT_EQ(md.read_phys(last, &word, sizeof word), 0u);
    const std::string e = error_of([&] { md.read_phys_or_throw(last, &word, sizeof word); });
    EXPECT_NE(e.find("beyond the end of the truncated file"), std::string::npos) << e;
}

TEST(FreebsdMinidump, CorruptHeaders) {
    KQ_NEED_FBSD_FIXTURE();
    auto head = file_prefix(minidump_path(), 3 * 4096);

    auto other = head;
    std::memcpy(other.data(), "minidump FreeBSD/arm64\0", 23);
    TempFile arm(other, "kq-fbsd-arm");
    std::string e = open_error(arm.path());
    EXPECT_EQ(e.rfind("unsupported dump: " + arm.path(), 0), 0u) << e;
    EXPECT_NE(e.find("FreeBSD/arm64"), std::string::npos) << e;

    for (uint32_t v : {1u, 7u}) {
        auto ver = head;
        std::memcpy(ver.data() + 24, &v, 4);
        TempFile f(ver, "kq-fbsd-ver");
        e = open_error(f.path());
        EXPECT_EQ(e.rfind("unsupported dump: ", 0), 0u) << e;
        EXPECT_NE(e.find("version " + std::to_string(v)), std::string::npos) << e;
    }

    auto huge = head;
    const uint32_t big = 0xfffff000;
    std::memcpy(huge.data() + 32, &big, 4);  // bitmapsize
    TempFile h(huge, "kq-fbsd-big");
    e = open_error(h.path());
    EXPECT_EQ(e.rfind("corrupt dump: ", 0), 0u) << e;
}
