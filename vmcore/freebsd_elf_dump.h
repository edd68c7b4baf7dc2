// A FreeBSD amd64 full dump (dumpsys_generic()): an ELF core whose OS ABI is
// "standalone", one PT_LOAD per physical range of dump_avail (p_paddr =
// p_vaddr = its start), no notes. It holds all of physical memory but not
// where the kernel's page tables are: the kernel image says so (the value of
// KPML4phys, itself at physical address &KPML4phys - kernbase), as libkvm
// reads it. Kernel virtual addresses then go through the 4-level page
// tables: 4 KiB, 2 MiB and 1 GiB pages, the direct map included.
#pragma once
#include <vector>

#include "vmcore/dump_probe.h"
#include "vmcore/freebsd_dump.h"

namespace kq {

class FreebsdElfDump final : public FreebsdDump {
public:
    // `probe` is probe_dump_fd's of this file. With opts.kernel_symbol the
    // page tables are found at once; without, or if the kernel's symbols do
    // not lead to them, the dump opens with a note and translates nothing
    // until set_page_tables(). Throws kq::Error for an unusable file.
    FreebsdElfDump(UniqueFd fd, const DumpProbe& probe, std::string display, const DumpOptions& opts);

    std::string format() const override { return "FreeBSD ELF vmcore"; }
    size_t read_phys(uint64_t paddr, void* buf, size_t len) override;
    std::vector<std::pair<uint64_t, uint64_t>> memory_ranges() const override { return ranges_; }

    // Finds the page tables from the kernel's symbols: the addresses of
    // KPML4phys and kernbase. Throws kq::Error saying why they do not lead
    // to a page-table root in this dump.
    void find_page_tables(uint64_t kpml4phys_symbol, uint64_t kernbase_symbol);
    void set_page_tables(uint64_t pml4_paddr);
    std::optional<uint64_t> page_tables() const { return pml4_; }

protected:
    amd64::Walk walk(uint64_t vaddr) override;
    std::string walk_failure(uint64_t vaddr, const amd64::Walk& w) override;
    std::string phys_absent(uint64_t paddr) const override;

private:
    std::vector<DumpProbe::FileSegment> segments_;  // sorted by physical address
    std::vector<std::pair<uint64_t, uint64_t>> ranges_;
    std::optional<uint64_t> pml4_;
};

}  // namespace kq
