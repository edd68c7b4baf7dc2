// vmcore/ on the lab's real QEMU dumps of the Debian 6.1 kernel. Skipped
// unless $KQ_DUMPS names a dump set (scripts/lab env); symbol addresses come
// from the debug vmlinux ($KQ_VMLINUX, else the set's manifest.txt).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "dump_fixture.h"
#include "vmcore/dump.h"

using namespace kqtest;

namespace {

std::string dumps_dir() {
    const char* d = std::getenv("KQ_DUMPS");
    return d && *d ? d : "";
}

bool exists(const std::string& p) { return std::ifstream(p).good(); }

std::string slurp(const std::string& p) {
    std::ifstream f(p);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

std::string first_line(const std::string& p) {
    std::string l;
    std::ifstream f(p);
    std::getline(f, l);
    return l;
}

#define REQUIRE_DUMP(name)                                                          \
    const std::string dir = dumps_dir();                                            \
    if (dir.empty()) GTEST_SKIP() << "KQ_DUMPS is not set";                         \
    if (!exists(dir + "/" name)) GTEST_SKIP() << dir << "/" name << " is missing"

std::string vmlinux_path() {
    if (const char* v = std::getenv("KQ_VMLINUX"); v && *v) return v;
    std::istringstream m(slurp(dumps_dir() + "/manifest.txt"));
    for (std::string l; std::getline(m, l);)
        if (l.rfind("vmlinux=", 0) == 0) return l.substr(8);
    return "";
}

// Link-time addresses of a few vmlinux symbols (nm), {} when unavailable.
std::map<std::string, uint64_t> vmlinux_symbols() {
    static std::map<std::string, uint64_t> syms = [] {
        std::map<std::string, uint64_t> out;
        const std::string v = vmlinux_path();
        if (v.empty() || !exists(v)) return out;
        FILE* p = popen(("nm --defined-only '" + v + "' 2>/dev/null").c_str(), "r");
        if (!p) return out;
        char line[512];
        while (fgets(line, sizeof line, p)) {
            unsigned long long a;
            char type, name[400];
            if (sscanf(line, "%llx %c %399s", &a, &type, name) != 3) continue;
            const std::string n = name;
            if (n == "linux_banner" || n == "init_task" || n == "init_uts_ns" || n == "_stext") out[n] = a;
        }
        pclose(p);
        return out;
    }();
    return syms;
}

kq::DumpOptions options(const TempDir& t, std::vector<std::string>* notes = nullptr) {
    kq::DumpOptions o;
    o.cache_dir = t.file("cache");
    if (notes) {
        o.note = [](void* ctx, const std::string& l) { static_cast<std::vector<std::string>*>(ctx)->push_back(l); };
        o.note_ctx = notes;
    }
    return o;
}

uint64_t kernel_offset(const kq::Dump& d) {
    return std::strtoull(d.vmcoreinfo_value("KERNELOFFSET").value_or("0").c_str(), nullptr, 16);
}

struct Seen {
    std::string banner, comm;
    size_t comm_offset = 0;
    std::vector<kq::CpuState> cpus;
};

// Everything checked on each dump; returns what must agree across formats.
Seen check_dump(const std::string& path, const std::string& format, const TempDir& t) {
    Seen seen;
    std::vector<std::string> notes;
    auto d = kq::Dump::open(path, options(t, &notes));
    EXPECT_EQ(d->format(), format);
    EXPECT_FALSE(d->truncated());
    for (const auto& n : notes) EXPECT_EQ(n.find("warning"), std::string::npos) << n;

    // VMCOREINFO and the release the guest reported.
    std::string release = first_line(dumps_dir() + "/uname.txt");
    EXPECT_EQ(d->vmcoreinfo_value("OSRELEASE"), release);
    EXPECT_TRUE(d->vmcoreinfo_value("SYMBOL(init_top_pgt)"));
    EXPECT_TRUE(d->vmcoreinfo_value("KERNELOFFSET"));

    // One NT_PRSTATUS per CPU, in order; QEMU writes pid = index + 1. Both
    // CPUs were in the kernel: kernel CS, kernel rip/rsp, per-cpu gs_base.
    int ncpus = 0;
    sscanf(first_line(dumps_dir() + "/tasks.txt").c_str(), "cpus %d", &ncpus);
    EXPECT_EQ(int(d->cpus().size()), ncpus);
    for (size_t i = 0; i < d->cpus().size(); ++i) {
        const auto& c = d->cpus()[i];
        EXPECT_EQ(c.cpu, int(i));
        EXPECT_EQ(c.pid, i + 1);
        EXPECT_EQ(c.regs.get(kq::Reg::cs), 0x10u);
        EXPECT_GE(c.regs.get(kq::Reg::rip), 0xffffffff80000000ull) << "cpu " << i;
        EXPECT_GE(c.regs.get(kq::Reg::rsp), 0xffff800000000000ull) << "cpu " << i;
        EXPECT_GE(c.regs.get(kq::Reg::gs_base), 0xffff800000000000ull) << "cpu " << i;
        // The stack pointer points at readable memory.
        EXPECT_TRUE(d->read_u64(c.regs.get(kq::Reg::rsp))) << "cpu " << i;
    }
    seen.cpus = d->cpus();

    // init_uts_ns (its VMCOREINFO address) holds the release.
    const uint64_t uts = std::strtoull(d->vmcoreinfo_value("SYMBOL(init_uts_ns)").value_or("0").c_str(), nullptr, 16);
    std::string buf(512, '\0');
    buf.resize(d->read(uts, buf.data(), buf.size()));
    EXPECT_NE(buf.find(release), std::string::npos);

    const auto syms = vmlinux_symbols();
    if (syms.count("linux_banner") && syms.count("init_task")) {
        const uint64_t off = kernel_offset(*d);
        if (syms.count("init_uts_ns")) {
            EXPECT_EQ(syms.at("init_uts_ns") + off, uts);
        }
        seen.banner = d->read_cstr(syms.at("linux_banner") + off, 512);
        EXPECT_EQ(seen.banner.rfind("Linux version " + release + " ", 0), 0u) << seen.banner;
        // init_task is swapper/0; find its comm without knowing the layout.
        std::string task(16384, '\0');
        task.resize(d->read(syms.at("init_task") + off, task.data(), task.size()));
        EXPECT_EQ(task.size(), 16384u);
        seen.comm_offset = task.find(std::string("swapper/0\0", 10));
        EXPECT_NE(seen.comm_offset, std::string::npos);
        if (seen.comm_offset != std::string::npos) seen.comm = task.substr(seen.comm_offset, 16);
        // A large read: 4 MiB of kernel text at once.
        std::string text(4 << 20, '\0');
        EXPECT_EQ(d->read(syms.at("_stext") + off, text.data(), text.size()), text.size());
    }
    return seen;
}

}  // namespace

TEST(RealDump, KaslrElf) {
    REQUIRE_DUMP("kaslr.elf");
    TempDir t;
    check_dump(dir + "/kaslr.elf", "ELF vmcore", t);
}

TEST(RealDump, KaslrPagingElf) {
    REQUIRE_DUMP("kaslr-paging.elf");
    TempDir t;
    check_dump(dir + "/kaslr-paging.elf", "ELF vmcore", t);
}

TEST(RealDump, KaslrFlattenedKdump) {
    REQUIRE_DUMP("kaslr.kdump");
    TempDir t;
    check_dump(dir + "/kaslr.kdump", "kdump-compressed (converted from flattened)", t);
    EXPECT_EQ(t.list("cache/converted").size(), 1u);
}

TEST(RealDump, NokaslrElf) {
    REQUIRE_DUMP("nokaslr.elf");
    TempDir t;
    auto d = kq::Dump::open(dir + "/nokaslr.elf", options(t));
    EXPECT_EQ(kernel_offset(*d), 0u);
    const auto syms = vmlinux_symbols();
    if (syms.count("linux_banner")) {
        EXPECT_EQ(d->read_cstr(syms.at("linux_banner")).rfind("Linux version ", 0), 0u);
    }
}

TEST(RealDump, SameBytesInAllThreeFormats) {
    REQUIRE_DUMP("kaslr.elf");
    if (!exists(dir + "/kaslr-paging.elf") || !exists(dir + "/kaslr.kdump")) GTEST_SKIP() << "incomplete dump set";
    if (vmlinux_symbols().empty()) GTEST_SKIP() << "no vmlinux";
    TempDir t;
    const Seen a = check_dump(dir + "/kaslr.elf", "ELF vmcore", t);
    const Seen b = check_dump(dir + "/kaslr-paging.elf", "ELF vmcore", t);
    const Seen c = check_dump(dir + "/kaslr.kdump", "kdump-compressed (converted from flattened)", t);
    EXPECT_EQ(a.banner, b.banner);
    EXPECT_EQ(a.banner, c.banner);
    EXPECT_EQ(a.comm_offset, b.comm_offset);
    EXPECT_EQ(a.comm_offset, c.comm_offset);
    EXPECT_EQ(a.comm, c.comm);
    ASSERT_EQ(a.cpus.size(), c.cpus.size());
    for (size_t i = 0; i < a.cpus.size(); ++i)
        for (unsigned r = 0; r < unsigned(kq::Reg::count); ++r) {
            EXPECT_EQ(a.cpus[i].regs.get(kq::Reg(r)), b.cpus[i].regs.get(kq::Reg(r))) << i << "/" << r;
            EXPECT_EQ(a.cpus[i].regs.get(kq::Reg(r)), c.cpus[i].regs.get(kq::Reg(r))) << i << "/" << r;
        }
}

TEST(RealDump, TruncatedCopies) {
    REQUIRE_DUMP("kaslr.elf");
    TempDir t;
    const std::string src = dir + "/kaslr.elf";
    auto copy_prefix = [&](const std::string& name, size_t bytes) {
        std::ifstream in(src, std::ios::binary);
        Bytes b(bytes);
        in.read(reinterpret_cast<char*>(b.data()), std::streamsize(bytes));
        b.resize(size_t(in.gcount()));
        return t.write(name, b);
    };
    // Cut inside the headers and notes: refused.
    const std::string head = copy_prefix("head.elf", 700);
    try {
        kq::Dump::open(head, options(t));
        ADD_FAILURE() << "opened a dump cut at 700 bytes";
    } catch (const kq::Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind("truncated dump: " + head + " (cut off inside the ELF", 0), 0u)
            << e.what();
    }
    // Cut inside memory: opens; memory past the cut is absent.
    const std::string cut = copy_prefix("cut.elf", 64u << 20);
    std::vector<std::string> notes;
    auto d = kq::Dump::open(cut, options(t, &notes));
    EXPECT_TRUE(d->truncated());
    ASSERT_FALSE(notes.empty());
    EXPECT_EQ(notes[0].rfind("truncated dump: " + cut + " holds 64 MiB of ", 0), 0u) << notes[0];
    std::string page(4096, '\0');
    EXPECT_EQ(d->read_phys(16u << 20, page.data(), page.size()), page.size());
    EXPECT_EQ(d->read_phys(200u << 20, page.data(), page.size()), 0u);
    EXPECT_EQ(d->cpus().size(), size_t(2));
}
