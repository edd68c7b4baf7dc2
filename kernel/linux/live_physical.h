// Physical memory of a running x86-64 Linux kernel, which has no dump: read
// through the kernel's direct map (physical address pa is mapped at
// page_offset_base + pa), the RAM its e820 table lists, and virtual
// addresses translated by its own page tables (init_top_pgt).
#pragma once
#include <memory>

#include "kernel/linux/linux_kernel.h"
#include "vmcore/physical_memory.h"

namespace kq {

class LivePhysical : public PhysicalMemory {
public:
    // Finds the direct map, the e820 RAM and the page tables of the kernel in
    // k's memory. Throws kq::Error when one of them cannot be read.
    static std::unique_ptr<LivePhysical> open(LinuxKernel& k);
    // From the parts open() finds: the direct map's base, the physical
    // address of the top-level page table, RAM as memory_ranges() says it.
    LivePhysical(MemorySource& mem, uint64_t direct_map, uint64_t pml4_phys,
                 std::vector<std::pair<uint64_t, uint64_t>> ram);

    std::string format() const override { return "live kernel, physical memory through its direct map"; }
    // A page the kernel does not map in its direct map reads short, as a
    // dump's hole does.
    size_t read_phys(uint64_t paddr, void* buf, size_t len) override;
    size_t read_phys_bulk(uint64_t paddr, void* buf, size_t len) override;
    std::vector<std::pair<uint64_t, uint64_t>> memory_ranges() const override { return ram_; }
    std::optional<uint64_t> to_phys(uint64_t vaddr) override;

private:
    MemorySource& mem_;
    uint64_t direct_map_, pml4_;
    std::vector<std::pair<uint64_t, uint64_t>> ram_;
};

}  // namespace kq
