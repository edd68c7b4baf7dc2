// vmcore/: the dump reader on synthetic dumps (ELF, kdump-compressed,
// flattened) built by dump_fixture.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <cstring>
#include <thread>

#include "dump_fixture.h"
#include "vmcore/dump.h"

using namespace kqtest;

namespace {

struct Notes {
    std::vector<std::string> lines;
    kq::DumpOptions opts(const std::string& cache = "") {
        kq::DumpOptions o;
        o.cache_dir = cache;
        o.note = [](void* ctx, const std::string& line) { static_cast<Notes*>(ctx)->lines.push_back(line); };
        o.note_ctx = this;
        return o;
    }
    bool any(const std::string& needle) const {
        for (const auto& l : lines)
            if (l.find(needle) != std::string::npos) return true;
        return false;
    }
};

ElfCoreSpec standard_elf() {
    ElfCoreSpec s;
    s.vmcoreinfo = vmcoreinfo_text();
    s.cpus = {fixture_cpu(0), fixture_cpu(1), fixture_cpu(2)};
    s.segments = fixture_memory().elf_segments();
    return s;
}

KdumpSpec standard_kdump() {
    KdumpSpec k;
    k.vmcoreinfo = vmcoreinfo_text();
    k.cpus = {fixture_cpu(0), fixture_cpu(1), fixture_cpu(2)};
    k.pages = fixture_memory().pages;
    return k;
}

uint64_t word(const Bytes& b, size_t off) {
    uint64_t v;
    std::memcpy(&v, b.data() + off, 8);
    return v;
}

// The one-line message kq::Error carries for opening `path`.
std::string open_error(const std::string& path, const kq::DumpOptions& opts = {}) {
    try {
        kq::Dump::open(path, opts);
    } catch (const kq::Error& e) {
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        return e.what();
    }
    return "(opened)";
}

void expect_fixture_memory(kq::Dump& d) {
    // Physical: pfn 16 and 17 are pattern pages, 18 is absent.
    Bytes buf(3 * kFixturePageSize, 0xee);
    EXPECT_EQ(d.read_phys(16 * kFixturePageSize, buf.data(), 2 * kFixturePageSize), 2 * kFixturePageSize);
    EXPECT_EQ(word(buf, 8), (uint64_t(16) << 32) | 8);
    EXPECT_EQ(word(buf, kFixturePageSize + 0x100), (uint64_t(17) << 32) | 0x100);
    // A read that runs into the absent page stops exactly there.
    EXPECT_EQ(d.read_phys(17 * kFixturePageSize + 0x800, buf.data(), kFixturePageSize), 0x800u);
    EXPECT_EQ(d.read_phys(18 * kFixturePageSize, buf.data(), 16), 0u);
    EXPECT_EQ(d.read_phys(0x40000000, buf.data(), 16), 0u);

    // Virtual, through the fixture's page tables.
    EXPECT_EQ(d.read(kFixtureText, buf.data(), 2 * kFixturePageSize), 2 * kFixturePageSize);
    EXPECT_EQ(word(buf, 0x10), (uint64_t(16) << 32) | 0x10);
    EXPECT_EQ(word(buf, kFixturePageSize + 0x18), (uint64_t(17) << 32) | 0x18);
    EXPECT_EQ(d.read_u64(kFixtureText + 0x1ff8), (uint64_t(17) << 32) | 0xff8);
    // Unaligned, crossing the page boundary.
    EXPECT_EQ(d.read(kFixtureText + 0xffc, buf.data(), 8), 8u);
    // Into the page absent from the dump, and into the unmapped one.
    EXPECT_EQ(d.read(kFixtureText + 0x1f00, buf.data(), 0x200), 0x100u);
    EXPECT_EQ(d.read(kFixtureText + 0x2000, buf.data(), 8), 0u);
    EXPECT_EQ(d.read(kFixtureText + 0x3000, buf.data(), 8), 0u);
    EXPECT_FALSE(d.read_u64(kFixtureText + 0x3000));
    EXPECT_EQ(d.read_cstr(kFixtureUts + 65 * 2), kFixtureRelease);
    // Non-canonical and the very top of the address space.
    EXPECT_EQ(d.read(0x0000800000000000ull, buf.data(), 8), 0u);
    EXPECT_EQ(d.read(0xfffffffffffffff8ull, buf.data(), 64), 0u);
}

void expect_fixture_cpus(const kq::Dump& d) {
    ASSERT_EQ(d.cpus().size(), 3u);
    for (unsigned i = 0; i < 3; ++i) {
        const auto& c = d.cpus()[i];
        const FixtureCpu want = fixture_cpu(i);
        EXPECT_EQ(c.cpu, int(i));
        EXPECT_EQ(c.pid, want.pid);
        for (unsigned r = 0; r < unsigned(kq::Reg::count); ++r) {
            EXPECT_TRUE(c.regs.has(kq::Reg(r)));
            EXPECT_EQ(c.regs.get(kq::Reg(r)), want.regs[r]) << "cpu " << i << " reg " << r;
        }
    }
    EXPECT_EQ(d.cpus()[1].regs.get(kq::Reg::rip), 0xC0DE000000010000ull | unsigned(kq::Reg::rip));
    EXPECT_EQ(d.cpus()[2].regs.get(kq::Reg::rsp), 0xC0DE000000020000ull | unsigned(kq::Reg::rsp));
}

}  // namespace

TEST(Dump, ElfMemoryRegistersVmcoreinfo) {
    TempDir t;
    Notes n;
    auto d = kq::Dump::open(t.write("vmcore", make_elf_core(standard_elf())), n.opts());
    EXPECT_EQ(d->format(), "ELF vmcore");
    EXPECT_FALSE(d->truncated());
    EXPECT_FALSE(d->live());
    EXPECT_EQ(d->page_size(), 4096u);
    EXPECT_TRUE(n.lines.empty()) << n.lines.front();
    expect_fixture_memory(*d);
    expect_fixture_cpus(*d);
    EXPECT_EQ(d->vmcoreinfo(), vmcoreinfo_text());
}

TEST(Dump, KdumpCompressedMemoryRegistersVmcoreinfo) {
    TempDir t;
    Notes n;
    auto d = kq::Dump::open(t.write("dump.kdump", make_kdump_compressed(standard_kdump())), n.opts());
    EXPECT_EQ(d->format(), "kdump-compressed");
    EXPECT_FALSE(d->truncated());
    EXPECT_TRUE(n.lines.empty()) << n.lines.front();
    expect_fixture_memory(*d);
    expect_fixture_cpus(*d);
    EXPECT_EQ(d->vmcoreinfo(), vmcoreinfo_text());
}

TEST(Dump, KdumpCompressedUncompressedPages) {
    TempDir t;
    KdumpSpec k = standard_kdump();
    k.compress = false;
    auto d = kq::Dump::open(t.write("plain.kdump", make_kdump_compressed(k)));
    expect_fixture_memory(*d);
}

TEST(Dump, VmcoreinfoValue) {
    TempDir t;
    auto d = kq::Dump::open(t.write("vmcore", make_elf_core(standard_elf())));
    EXPECT_EQ(d->vmcoreinfo_value("OSRELEASE"), "6.1.0-fixture");
    EXPECT_EQ(d->vmcoreinfo_value("PAGESIZE"), "4096");
    EXPECT_EQ(d->vmcoreinfo_value("KERNELOFFSET"), "0");
    EXPECT_EQ(d->vmcoreinfo_value("SYMBOL(init_task)"), "ffffffff82a14940");
    EXPECT_EQ(d->vmcoreinfo_value("OFFSET(task_struct.comm)"), "3016");
    EXPECT_EQ(d->vmcoreinfo_value("BUILD-ID"), "00112233445566778899aabbccddeeff00112233");
    EXPECT_FALSE(d->vmcoreinfo_value("SYMBOL(init"));
    EXPECT_FALSE(d->vmcoreinfo_value("NOSUCHKEY"));
    EXPECT_FALSE(d->vmcoreinfo_value(""));
}

TEST(Dump, ElfWithoutVmcoreinfoReadsPhysicalOnly) {
    TempDir t;
    Notes n;
    ElfCoreSpec s = standard_elf();
    s.vmcoreinfo.clear();
    auto d = kq::Dump::open(t.write("novmci", make_elf_core(s)), n.opts());
    EXPECT_TRUE(n.any("no VMCOREINFO")) << (n.lines.empty() ? "" : n.lines.front());
    EXPECT_EQ(d->vmcoreinfo(), "");
    EXPECT_FALSE(d->vmcoreinfo_value("OSRELEASE"));
    uint64_t v = 0;
    EXPECT_EQ(d->read(kFixtureText, &v, 8), 0u);
    EXPECT_EQ(d->read_phys(16 * kFixturePageSize + 8, &v, 8), 8u);
    EXPECT_EQ(v, (uint64_t(16) << 32) | 8);
    EXPECT_EQ(d->cpus().size(), 3u);
}

TEST(Dump, ElfWithVirtualAddressesInSegments) {
    // As QEMU's paging dumps: p_vaddr set. Translation still uses the page
    // tables; the physical map comes from p_paddr.
    TempDir t;
    ElfCoreSpec s = standard_elf();
    for (auto& seg : s.segments)
        if (seg.paddr == 16 * kFixturePageSize) seg.vaddr = kFixtureText;
    auto d = kq::Dump::open(t.write("paging", make_elf_core(s)));
    expect_fixture_memory(*d);
}

TEST(Dump, ConcurrentReads) {
    TempDir t;
    auto d = kq::Dump::open(t.write("dump.kdump", make_kdump_compressed(standard_kdump())));
    std::atomic<int> bad{0};
    auto worker = [&](unsigned seed) {
        for (unsigned i = 0; i < 4000; ++i) {
            const uint64_t off = ((i * 2654435761u + seed) % (2 * kFixturePageSize - 8)) & ~7ull;
            uint64_t v = 0;
            if (d->read(kFixtureText + off, &v, 8) != 8) ++bad;
            const uint64_t page = 16 + off / kFixturePageSize;
            if (v != ((page << 32) | (off % kFixturePageSize))) ++bad;
            uint64_t p = 0;
            if (d->read_phys(page * kFixturePageSize + off % kFixturePageSize, &p, 8) != 8 || p != v) ++bad;
        }
    };
    std::thread a(worker, 1), b(worker, 7);
    a.join();
    b.join();
    EXPECT_EQ(bad.load(), 0);
}

// ---- flattened ---------------------------------------------------------

TEST(DumpFlattened, ConvertsOnceAndReadsLikeTheOriginal) {
    TempDir t;
    const Bytes image = make_kdump_compressed(standard_kdump());
    const std::string path = t.write("guest.flat", flatten(image, 1000, true));
    Notes n;
    const std::string cache = t.file("cache");
    {
        auto d = kq::Dump::open(path, n.opts(cache));
        EXPECT_EQ(d->format(), "kdump-compressed (converted from flattened)");
        EXPECT_TRUE(n.any("converting flattened dump " + path)) << (n.lines.empty() ? "" : n.lines.front());
        EXPECT_TRUE(n.any("(once)"));
        expect_fixture_memory(*d);
        expect_fixture_cpus(*d);
        EXPECT_EQ(d->vmcoreinfo_value("OSRELEASE"), "6.1.0-fixture");
    }
    auto files = t.list("cache/converted");
    ASSERT_EQ(files.size(), 1u);
    EXPECT_EQ(files[0].rfind("guest.flat.", 0), 0u) << files[0];
    // The converted copy is the original image, byte for byte.
    struct stat st;
    ASSERT_EQ(stat((cache + "/converted/" + files[0]).c_str(), &st), 0);
    EXPECT_EQ(uint64_t(st.st_size), image.size());

    // Opened again: from the cache, no conversion.
    n.lines.clear();
    auto d2 = kq::Dump::open(path, n.opts(cache));
    EXPECT_FALSE(n.any("converting")) << n.lines.front();
    expect_fixture_memory(*d2);

    // A changed input (new mtime/size) is converted again; the stale copy goes.
    const Bytes image2 = make_kdump_compressed(standard_kdump());
    Bytes flat2 = flatten(image2, 4096, false);
    t.write("guest.flat", flat2);
    struct timespec times[2] = {{0, UTIME_OMIT}, {st.st_mtim.tv_sec + 10, 0}};
    utimensat(AT_FDCWD, path.c_str(), times, 0);
    n.lines.clear();
    auto d3 = kq::Dump::open(path, n.opts(cache));
    EXPECT_TRUE(n.any("converting"));
    EXPECT_EQ(t.list("cache/converted").size(), 1u);
}

TEST(DumpFlattened, DamagedCachedCopyIsConvertedAgain) {
    TempDir t;
    const std::string path = t.write("d.flat", flatten(make_kdump_compressed(standard_kdump()), 4096, false));
    Notes n;
    kq::Dump::open(path, n.opts(t.file("cache")));
    const auto files = t.list("cache/converted");
    ASSERT_EQ(files.size(), 1u);
    ASSERT_EQ(truncate(t.file("cache/converted/" + files[0]).c_str(), 100), 0);
    n.lines.clear();
    auto d = kq::Dump::open(path, n.opts(t.file("cache")));
    EXPECT_TRUE(n.any("does not open; converting again"));
    EXPECT_TRUE(n.any("converting flattened dump"));
    expect_fixture_memory(*d);
}

TEST(DumpFlattened, CacheFromEnvironment) {
    TempDir t;
    const std::string path = t.write("env.flat", flatten(make_kdump_compressed(standard_kdump()), 8192, false));
    const std::string cache = t.file("envcache");
    setenv("KQ_CACHE", cache.c_str(), 1);
    auto d = kq::Dump::open(path);
    unsetenv("KQ_CACHE");
    EXPECT_EQ(d->format(), "kdump-compressed (converted from flattened)");
    EXPECT_EQ(t.list("envcache/converted").size(), 1u);
}

TEST(DumpFlattened, SparseImageWithHoles) {
    // Records need not cover the file: what none writes reads as zeros.
    // Here: an ELF core whose gap between headers and data is never written.
    TempDir t;
    const Bytes image = make_elf_core(standard_elf());
    Bytes flat(4096, 0);
    std::memcpy(flat.data(), "makedumpfile", 12);
    flat[16 + 7] = 1;
    flat[24 + 7] = 1;
    auto rec = [&](uint64_t off, uint64_t size) {
        for (int i = 7; i >= 0; --i) flat.push_back(uint8_t(off >> (8 * i)));
        for (int i = 7; i >= 0; --i) flat.push_back(uint8_t(size >> (8 * i)));
        flat.insert(flat.end(), image.begin() + off, image.begin() + off + size);
    };
    // Last page first, then the headers, then everything else except zeros.
    rec(image.size() - 4096, 4096);
    rec(0, 2048);
    for (size_t off = 2048; off < image.size() - 4096; off += 512) {
        bool zero = true;
        for (size_t i = off; i < off + 512 && zero; ++i) zero = image[i] == 0;
        if (!zero) rec(off, 512);
    }
    for (int i = 0; i < 16; ++i) flat.push_back(0xff);
    const std::string path = t.write("holes.flat", flat);
    Notes n;
    auto d = kq::Dump::open(path, n.opts(t.file("c")));
    EXPECT_EQ(d->format(), "ELF vmcore (converted from flattened)");
    expect_fixture_memory(*d);
}

TEST(DumpFlattened, TruncatedStreamLeavesNothingBehind) {
    TempDir t;
    const Bytes flat = flatten(make_kdump_compressed(standard_kdump()), 1000, true);
    for (size_t cut : {size_t(4096 + 7), size_t(4096 + 16 + 500), flat.size() / 2, flat.size() - 16,
                       flat.size() - 3}) {
        const std::string path = t.write("cut.flat", Bytes(flat.begin(), flat.begin() + cut));
        const std::string msg = open_error(path, Notes().opts(t.file("cache")));
        EXPECT_EQ(msg.rfind("truncated dump: " + path, 0), 0u) << cut << ": " << msg;
        EXPECT_NE(msg.find("without its end marker"), std::string::npos) << msg;
        EXPECT_TRUE(t.list("cache/converted").empty()) << cut;
    }
    // Cut inside the 4 KiB header.
    const std::string path = t.write("hdr.flat", Bytes(flat.begin(), flat.begin() + 40));
    EXPECT_EQ(open_error(path, Notes().opts(t.file("cache"))).rfind("truncated dump", 0), 0u);
}

TEST(DumpFlattened, CorruptRecord) {
    TempDir t;
    Bytes flat = flatten(make_kdump_compressed(standard_kdump()), 4096, false);
    Bytes bad = flat;
    bad[4096] = 0x80;  // first record offset negative
    const std::string path = t.write("neg.flat", bad);
    const std::string msg = open_error(path, Notes().opts(t.file("cache")));
    EXPECT_EQ(msg.rfind("corrupt dump: " + path, 0), 0u) << msg;
    EXPECT_TRUE(t.list("cache/converted").empty());

    bad = flat;
    bad[16 + 7] = 2;  // flat header type 2
    EXPECT_EQ(open_error(t.write("type.flat", bad)).rfind("unsupported dump", 0), 0u);
}

TEST(DumpFlattened, UnwritableCache) {
    TempDir t;
    const std::string path = t.write("x.flat", flatten(make_kdump_compressed(standard_kdump()), 4096, false));
    t.write("file", Bytes{1});  // a file where the cache directory should be
    const std::string msg = open_error(path, Notes().opts(t.file("file")));
    EXPECT_EQ(msg.rfind("cannot convert flattened dump " + path, 0), 0u) << msg;
}

// ---- bad input ---------------------------------------------------------

TEST(DumpBadInput, MissingFile) {
    TempDir t;
    EXPECT_EQ(open_error(t.file("nope")), "cannot open " + t.file("nope") + ": No such file or directory");
    EXPECT_EQ(open_error(""), "cannot open dump: no file name given");
}

TEST(DumpBadInput, EmptyFile) {
    TempDir t;
    const std::string p = t.write("empty", {});
    EXPECT_EQ(open_error(p), "not a kernel dump: " + p + " (empty file)");
}

TEST(DumpBadInput, Directory) {
    TempDir t;
    EXPECT_EQ(open_error(t.path()), "not a kernel dump: " + t.path() + " (a directory)");
}

TEST(DumpBadInput, Fifo) {
    TempDir t;
    ASSERT_EQ(mkfifo(t.file("fifo").c_str(), 0600), 0);
    EXPECT_EQ(open_error(t.file("fifo")), "not a kernel dump: " + t.file("fifo") + " (not a regular file)");
}

TEST(DumpBadInput, Executable) {
    EXPECT_EQ(open_error("/bin/ls"), "not a kernel dump: /bin/ls (ELF executable)");
}

TEST(DumpBadInput, SharedLibraryAndObject) {
    TempDir t;
    ElfCoreSpec s = standard_elf();
    s.type = 3;  // ET_DYN without PT_INTERP
    const std::string so = t.write("lib.so", make_elf_core(s));
    EXPECT_EQ(open_error(so), "not a kernel dump: " + so + " (ELF shared library)");
    s.type = 1;  // ET_REL
    const std::string ko = t.write("mod.ko", make_elf_core(s));
    EXPECT_EQ(open_error(ko), "not a kernel dump: " + ko + " (ELF relocatable object, perhaps a kernel module)");
}

TEST(DumpBadInput, UserSpaceCore) {
    TempDir t;
    ElfCoreSpec s = standard_elf();
    s.vmcoreinfo.clear();
    s.user_space_notes = true;
    const std::string p = t.write("core.1234", make_elf_core(s));
    EXPECT_EQ(open_error(p), "not a kernel dump: " + p + " (core file of a user-space process)");
}

TEST(DumpBadInput, OtherArchitecture) {
    TempDir t;
    ElfCoreSpec s = standard_elf();
    s.machine = 183;  // EM_AARCH64
    const std::string p = t.write("arm.vmcore", make_elf_core(s));
    EXPECT_EQ(open_error(p), "unsupported dump: " + p + " (ELF core of aarch64; only x86-64 kernel dumps are supported)");
    KdumpSpec k = standard_kdump();
    k.machine = "s390x";
    const std::string kp = t.write("s390.kdump", make_kdump_compressed(k));
    EXPECT_EQ(open_error(kp).rfind("unsupported dump: " + kp + " (kdump-compressed dump of s390x", 0), 0u)
        << open_error(kp);
}

TEST(DumpBadInput, RandomBytesTextAndCompressed) {
    TempDir t;
    Bytes rnd(100000);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (auto& b : rnd) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b = uint8_t(x);
    }
    const std::string r = t.write("random.bin", rnd);
    EXPECT_EQ(open_error(r), "not a kernel dump: " + r + " (unrecognised format)");

    const std::string txt = "just some notes\nnot a dump\n";
    const std::string tp = t.write("notes.txt", Bytes(txt.begin(), txt.end()));
    EXPECT_EQ(open_error(tp), "not a kernel dump: " + tp + " (text file)");

    Bytes gz = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    gz.resize(4096);
    const std::string gp = t.write("vmcore.gz", gz);
    EXPECT_EQ(open_error(gp), "not a kernel dump: " + gp + " (gzip-compressed file; decompress it first)");

    // Short garbage that starts like a kdump or an ELF file.
    const std::string kd = "KDUMP   ";
    const std::string kp = t.write("short.kdump", Bytes(kd.begin(), kd.end()));
    EXPECT_EQ(open_error(kp).rfind("truncated dump: " + kp, 0), 0u) << open_error(kp);
    const std::string ep = t.write("short.elf", Bytes{0x7f, 'E', 'L', 'F', 2, 1, 1});
    EXPECT_EQ(open_error(ep).rfind("truncated dump: " + ep, 0), 0u) << open_error(ep);
}

TEST(DumpBadInput, ElfCutInHeadersOrNotes) {
    TempDir t;
    const Bytes full = make_elf_core(standard_elf());
    for (size_t cut : {size_t(40), size_t(64 + 20), size_t(64 + 56 * 3 + 100)}) {
        const std::string p = t.write("cut.elf", Bytes(full.begin(), full.begin() + cut));
        const std::string msg = open_error(p);
        EXPECT_EQ(msg.rfind("truncated dump: " + p + " (cut off inside the ELF", 0), 0u) << cut << ": " << msg;
    }
}

TEST(DumpBadInput, ElfCutInMemoryOpensWithShortReads) {
    TempDir t;
    const Bytes full = make_elf_core(standard_elf());
    // Cut in the middle of pfn 17 (the second page of the 16..17 segment).
    const auto segs = fixture_memory().elf_segments();
    size_t off17 = 0;
    {
        // Data of segment i starts at the 4 KiB boundary after headers+notes,
        // and segments follow each other page aligned.
        size_t data = 4096;
        for (const auto& s : segs) {
            if (s.paddr == 16 * kFixturePageSize) off17 = data + kFixturePageSize;
            data += (s.data.size() + 4095) / 4096 * 4096;
        }
    }
    ASSERT_GT(off17, 0u);
    ASSERT_LT(off17 + 0x800, full.size());
    const std::string p = t.write("cut.elf", Bytes(full.begin(), full.begin() + off17 + 0x800));
    Notes n;
    auto d = kq::Dump::open(p, n.opts());
    EXPECT_TRUE(d->truncated());
    EXPECT_TRUE(n.any("truncated dump: " + p + " holds")) << (n.lines.empty() ? "" : n.lines.front());
    Bytes buf(2 * kFixturePageSize);
    EXPECT_EQ(d->read(kFixtureText, buf.data(), buf.size()), kFixturePageSize + 0x800);
    EXPECT_EQ(word(buf, kFixturePageSize + 0x7f8), (uint64_t(17) << 32) | 0x7f8);
    EXPECT_EQ(d->read_phys(16 * kFixturePageSize, buf.data(), buf.size()), kFixturePageSize + 0x800);
    EXPECT_EQ(d->read_cstr(kFixtureUts + 65 * 2), kFixtureRelease);  // before the cut
    EXPECT_EQ(d->cpus().size(), 3u);
}

TEST(DumpBadInput, KdumpCutInHeaders) {
    TempDir t;
    const Bytes full = make_kdump_compressed(standard_kdump());
    for (size_t cut : {size_t(300), size_t(5000), size_t(3 * 4096 + 10)}) {
        const std::string p = t.write("cut.kdump", Bytes(full.begin(), full.begin() + cut));
        const std::string msg = open_error(p);
        EXPECT_EQ(msg.rfind("truncated dump: " + p + " (cut off inside the kdump-compressed", 0), 0u)
            << cut << ": " << msg;
    }
}

TEST(DumpBadInput, KdumpCutInPageDataOpensWithShortReads) {
    TempDir t;
    KdumpSpec k = standard_kdump();
    k.compress = false;  // page data in pfn order, 4 KiB each: the last page is pfn 17
    const Bytes full = make_kdump_compressed(k);
    const std::string p = t.write("cut.kdump", Bytes(full.begin(), full.end() - 100));
    Notes n;
    auto d = kq::Dump::open(p, n.opts());
    EXPECT_TRUE(d->truncated());
    EXPECT_TRUE(n.any("truncated dump: " + p + " holds")) << (n.lines.empty() ? "" : n.lines.front());
    Bytes buf(2 * kFixturePageSize);
    EXPECT_EQ(d->read(kFixtureText, buf.data(), buf.size()), kFixturePageSize);  // pfn 17 is cut
    EXPECT_EQ(d->read_phys(17 * kFixturePageSize, buf.data(), 8), 0u);
    EXPECT_EQ(d->read_cstr(kFixtureUts + 65 * 2), kFixtureRelease);
}

TEST(DumpBadInput, CorruptPageDescriptor) {
    TempDir t;
    KdumpSpec k = standard_kdump();
    Bytes b = make_kdump_compressed(k);
    // The descriptors follow the header block, one sub-header block and two
    // bitmap blocks; make the second one claim a 64 KiB page.
    const size_t desc = 4 * kFixturePageSize + 24 + 8;
    b[desc + 2] = 1;
    const std::string p = t.write("desc.kdump", b);
    EXPECT_EQ(open_error(p), "corrupt dump: " + p + " (invalid kdump-compressed page descriptor for page 2)");
}

TEST(DumpBadInput, BogusElfSectionHeaders) {
    TempDir t;
    Bytes b = make_elf_core(standard_elf());
    b[60] = 0x00;  // e_shnum = 0xff00 with e_shoff = 0
    b[61] = 0xff;
    const std::string p = t.write("sh.elf", b);
    EXPECT_EQ(open_error(p), "corrupt dump: " + p + " (invalid ELF section header table)");
}

TEST(DumpBadInput, CorruptedFixturesNeverCrash) {
    // Random damage to each format: Dump::open either throws kq::Error with
    // one line or opens a dump that reads without crashing.
    TempDir t;
    const Bytes bases[3] = {make_elf_core(standard_elf()), make_kdump_compressed(standard_kdump()),
                            flatten(make_kdump_compressed(standard_kdump()), 3000, true)};
    std::mt19937_64 rng(12345);
    kq::DumpOptions opts;
    opts.cache_dir = t.file("cache");
    int opened = 0, refused = 0;
    for (int i = 0; i < 300; ++i) {
        Bytes b = bases[i % 3];
        for (int f = 1 + int(rng() % 8); f > 0; --f) {
            const size_t pos = (rng() % 2) ? rng() % std::min<size_t>(b.size(), 8192) : rng() % b.size();
            b[pos] = (rng() % 3 == 0) ? 0xff : uint8_t(rng());
        }
        if (rng() % 5 == 0) b.resize(rng() % b.size());
        const std::string p = t.write("fuzz" + std::to_string(i % 3), b);
        try {
            auto d = kq::Dump::open(p, opts);
            ++opened;
            Bytes buf(3 * kFixturePageSize);
            d->read(kFixtureText, buf.data(), buf.size());
            d->read_phys(0, buf.data(), buf.size());
            for (int j = 0; j < 20; ++j) {
                uint64_t v;
                d->read(rng(), &v, sizeof v);
                d->read_phys(rng() % (1 << 20), &v, sizeof v);
            }
        } catch (const kq::Error& e) {
            ++refused;
            EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        }
    }
    EXPECT_GT(opened, 0);
    EXPECT_GT(refused, 0);
}
