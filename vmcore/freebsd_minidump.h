// A FreeBSD amd64 minidump (minidumpsys(), format version 2 or 3 of FreeBSD
// 12-14), as savecore(8) writes it: page-aligned sections
//   header      struct minidumphdr: magic "minidump FreeBSD/amd64", version,
//               msgbufsize, bitmapsize, pmapsize, kernbase
//               (VM_MIN_KERNEL_ADDRESS), dmapbase, dmapend, dumpavailsize (v3)
//   msgbuf      the kernel message buffer, msgbufsize bytes
//   dump_avail  (v3) [start, end) physical ranges, ended by 0, 0
//   bitmap      one bit per page of dump_avail's ranges in turn (v2: of all
//               physical memory from 0): set if the page is dumped
//   pmap        the kernel's page directories, one page (512 entries) per
//               1 GiB from kernbase; a 1 GiB page as 512 2 MiB entries
//   pages       every page whose bit is set, in bit order
// Kernel addresses from kernbase up go through those page directories (and
// the 4 KiB page tables among the dumped pages); direct-map addresses
// [dmapbase, dmapend) are physical + dmapbase. Nothing else is mapped.
#pragma once
#include <vector>

#include "vmcore/freebsd_dump.h"

namespace kq {

class FreebsdMinidump final : public FreebsdDump {
public:
    // Throws kq::Error for another architecture's minidump, an unsupported
    // version, a corrupt header or section, and a file cut off before its
    // first page of memory. Cut off later, it opens with a note and
    // truncated() set.
    FreebsdMinidump(UniqueFd fd, std::string display, const DumpOptions& opts);

    std::string format() const override;
    size_t read_phys(uint64_t paddr, void* buf, size_t len) override;
    std::vector<std::pair<uint64_t, uint64_t>> memory_ranges() const override { return ranges_; }

    uint32_t version() const { return version_; }
    uint64_t kernbase() const { return kernbase_; }
    uint64_t dmapbase() const { return dmapbase_; }
    uint64_t dmapend() const { return dmapend_; }
    // The message buffer's bytes as dumped (ring order is the kernel's).
    const std::string& message_buffer() const { return msgbuf_; }
    const std::vector<std::pair<uint64_t, uint64_t>>& dump_avail() const { return avail_; }

protected:
    amd64::Walk walk(uint64_t vaddr) override;
    std::string walk_failure(uint64_t vaddr, const amd64::Walk& w) override;
    std::string phys_absent(uint64_t paddr) const override;

private:
    // The page's bit, if paddr lies in dump_avail.
    std::optional<uint64_t> bit_of(uint64_t paddr) const;
    bool bit_set(uint64_t bit) const { return bit / 64 < bitmap_.size() && (bitmap_[bit / 64] >> (bit % 64)) & 1; }
    // File offset of the page with this (set) bit.
    uint64_t page_offset(uint64_t bit) const;

    uint32_t version_ = 0;
    uint64_t kernbase_ = 0, dmapbase_ = 0, dmapend_ = 0;
    std::string msgbuf_;
    std::vector<std::pair<uint64_t, uint64_t>> avail_;  // [start, end)
    std::vector<uint64_t> bitmap_;
    std::vector<uint64_t> rank_;  // set bits before each bitmap word
    std::vector<uint64_t> pmap_;  // page-directory entries from kernbase
    uint64_t data_off_ = 0;
    uint64_t file_size_ = 0;
    std::vector<std::pair<uint64_t, uint64_t>> ranges_;  // dumped physical memory
};

}  // namespace kq
