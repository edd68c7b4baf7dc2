// amd64 4-level page tables: from a page-map level-4 table (or from one
// page-directory entry, as a FreeBSD minidump keeps them) down to the
// physical address of a virtual one, through 4 KiB, 2 MiB and 1 GiB pages.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace kq::amd64 {

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kPageSize2M = 2ull << 20;
constexpr uint64_t kPageSize1G = 1ull << 30;
constexpr uint64_t kPresent = 0x1;
constexpr uint64_t kLargePage = 0x80;  // PS: the entry maps a 2 MiB or 1 GiB page
constexpr uint64_t kFrame = 0x000ffffffffff000;
constexpr uint64_t kNoAddress = ~0ull;  // an entry that is not in physical memory

// Reads the 8-byte entry at a physical address; false if the dump lacks it.
using ReadEntry = std::function<bool(uint64_t paddr, uint64_t* entry)>;

struct Walk {
    enum Status { Ok, NotPresent, TableMissing, NonCanonical };
    Status status = NotPresent;
    uint64_t paddr = 0;      // Ok: the physical address
    uint64_t page_size = 0;  // Ok: 4 KiB, 2 MiB or 1 GiB
    int level = 0;           // otherwise: 4 (PML4) .. 1 (page table) where it stopped
    uint64_t entry_paddr = 0;  // where that entry is (or would be)
    uint64_t entry = 0;        // NotPresent: its value

    bool ok() const { return status == Ok; }
};

bool canonical(uint64_t vaddr);

// From the level-4 table at pml4_paddr.
Walk walk_pml4(uint64_t pml4_paddr, uint64_t vaddr, const ReadEntry& read);
// From a page-directory entry already at hand (level 2); pde_paddr is where
// it lies, or kNoAddress.
Walk walk_pde(uint64_t pde, uint64_t pde_paddr, uint64_t vaddr, const ReadEntry& read);

// Why a walk failed, for a message: "page-directory entry 0x... at physical
// 0x... is not present".
std::string describe(const Walk& w);

}  // namespace kq::amd64
