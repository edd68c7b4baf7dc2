#include "vmcore/amd64_page_walk.h"

#include <cstdio>

namespace kq::amd64 {
namespace {

constexpr const char* kLevelNames[] = {"", "page-table entry", "page-directory entry",
                                       "page-directory-pointer entry", "page-map level-4 entry"};

unsigned index(uint64_t vaddr, int level) { return unsigned(vaddr >> (12 + 9 * (level - 1))) & 511; }

// Walks from the table at table_paddr, level `level`, down.
Walk walk_from(uint64_t table_paddr, int level, uint64_t vaddr, const ReadEntry& read) {
    Walk w;
    for (; level >= 1; --level) {
        w.level = level;
        w.entry_paddr = (table_paddr & kFrame) + 8ull * index(vaddr, level);
        if (!read(w.entry_paddr, &w.entry)) {
            w.status = Walk::TableMissing;
            return w;
        }
        if (!(w.entry & kPresent)) {
            w.status = Walk::NotPresent;
            return w;
        }
        if (level == 1 || ((level == 2 || level == 3) && (w.entry & kLargePage))) {
            w.page_size = level == 1 ? kPageSize : level == 2 ? kPageSize2M : kPageSize1G;
            w.paddr = (w.entry & kFrame & ~(w.page_size - 1)) | (vaddr & (w.page_size - 1));
            w.status = Walk::Ok;
            return w;
        }
        table_paddr = w.entry & kFrame;
    }
    return w;  // not reached: level 1 always returns
}

}  // namespace

bool canonical(uint64_t vaddr) {
    const uint64_t top = vaddr >> 47;
    return top == 0 || top == 0x1ffff;
}

Walk walk_pml4(uint64_t pml4_paddr, uint64_t vaddr, const ReadEntry& read) {
    if (!canonical(vaddr)) {
        Walk w;
        w.status = Walk::NonCanonical;
        return w;
    }
    return walk_from(pml4_paddr, 4, vaddr, read);
}

Walk walk_pde(uint64_t pde, uint64_t pde_paddr, uint64_t vaddr, const ReadEntry& read) {
    Walk w;
    w.level = 2;
    w.entry = pde;
    w.entry_paddr = pde_paddr;
    if (!(pde & kPresent)) return w;
    if (pde & kLargePage) {
        w.status = Walk::Ok;
        w.page_size = kPageSize2M;
        w.paddr = (pde & kFrame & ~(kPageSize2M - 1)) | (vaddr & (kPageSize2M - 1));
        return w;
    }
    return walk_from(pde & kFrame, 1, vaddr, read);
}

std::string describe(const Walk& w) {
    char buf[160];
    const char* name = w.level >= 1 && w.level <= 4 ? kLevelNames[w.level] : "entry";
    switch (w.status) {
    case Walk::Ok: return "mapped";
    case Walk::NonCanonical: return "not a canonical address";
    case Walk::TableMissing:
        snprintf(buf, sizeof buf, "the %s at physical 0x%llx is not in the dump", name,
                 static_cast<unsigned long long>(w.entry_paddr));
        return buf;
    case Walk::NotPresent:
        if (w.entry_paddr == kNoAddress)
            snprintf(buf, sizeof buf, "%s 0x%llx is not present", name, static_cast<unsigned long long>(w.entry));
        else
            snprintf(buf, sizeof buf, "%s 0x%llx at physical 0x%llx is not present", name,
                     static_cast<unsigned long long>(w.entry), static_cast<unsigned long long>(w.entry_paddr));
        return buf;
    }
    return "";
}

}  // namespace kq::amd64
