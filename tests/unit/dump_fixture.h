// Small synthetic kernel dumps for the vmcore/ unit tests: an ELF64 core
// (PT_LOAD segments, NT_PRSTATUS and VMCOREINFO notes), a kdump-compressed
// file, and makedumpfile's flattened form of any byte image.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kqtest {

using Bytes = std::vector<uint8_t>;

// One CPU's NT_PRSTATUS: pr_pid and pr_reg (user_regs_struct order).
struct FixtureCpu {
    uint32_t pid = 0;
    uint64_t regs[27] = {};
};

// Register values that identify the CPU and the register (0xC0DE'cc'rr...).
FixtureCpu fixture_cpu(unsigned index);

struct ElfSegment {
    uint64_t paddr = 0;
    uint64_t vaddr = 0;
    Bytes data;
    uint64_t memsz = 0;  // 0: data.size()
};

struct ElfCoreSpec {
    uint16_t type = 4;        // ET_CORE
    uint16_t machine = 62;    // EM_X86_64
    std::string vmcoreinfo;   // empty: no VMCOREINFO note
    std::vector<FixtureCpu> cpus;
    std::vector<ElfSegment> segments;
    bool user_space_notes = false;  // add NT_AUXV and NT_FILE like a process core
};

Bytes make_elf_core(const ElfCoreSpec& spec);

struct KdumpSpec {
    std::string vmcoreinfo;
    std::vector<FixtureCpu> cpus;
    uint64_t max_pfn = 64;
    std::map<uint64_t, Bytes> pages;  // pfn -> page (page_size bytes)
    bool compress = true;             // zlib-compress pages that shrink
    std::string machine = "x86_64";
};

constexpr uint32_t kFixturePageSize = 4096;

Bytes make_kdump_compressed(const KdumpSpec& spec);

// makedumpfile's flattened form of `image`: records of at most `chunk`
// bytes, written in a scrambled order when `scramble` (as a stream that
// rewrites its header at the end would), then the end marker.
Bytes flatten(const Bytes& image, size_t chunk, bool scramble);

// A page of recognisable bytes: every 8-byte word holds (tag << 32 | offset).
Bytes pattern_page(uint32_t tag);

// VMCOREINFO of the fixture kernel: OSRELEASE, PAGESIZE, KERNELOFFSET,
// SYMBOL(init_top_pgt) (the page-table root of fixture_memory()) ...
std::string vmcoreinfo_text();
constexpr const char* kFixtureRelease = "6.1.0-fixture";

// Physical memory of a tiny kernel: 4-level page tables rooted at
// init_top_pgt (pfn 1) mapping kernel virtual pages to data pages.
struct KernelMemory {
    std::map<uint64_t, Bytes> pages;  // pfn -> page
    uint64_t next_table_pfn = 2;

    void map(uint64_t vaddr, uint64_t pfn);  // a 4 KiB mapping, tables on demand
    std::vector<ElfSegment> elf_segments() const;  // one PT_LOAD per run of pfns, p_vaddr 0
};

// The standard fixture (see kFixture* below):
//   kFixtureText + 0x0000 -> pfn 16 (pattern_page(16))
//   kFixtureText + 0x1000 -> pfn 17 (pattern_page(17))
//   kFixtureText + 0x2000 -> pfn 18, absent from the dump
//   kFixtureText + 0x3000    not mapped
//   kFixtureText + 0x4000 -> pfn 12: init_uts_ns (release string at +65)
KernelMemory fixture_memory();
constexpr uint64_t kFixtureText = 0xffffffff81000000ull;
constexpr uint64_t kFixtureUts = kFixtureText + 0x4000;

// A private directory under $TMPDIR, removed with its content on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }
    std::string write(const std::string& name, const Bytes& data) const;
    std::vector<std::string> list(const std::string& sub = "") const;

private:
    std::string path_;
};

}  // namespace kqtest
