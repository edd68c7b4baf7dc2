// A kernel's physical memory, whatever gives it: a dump file (vmcore/dump.h),
// or a running kernel read through its own mapping of memory
// (kernel/linux/live_physical.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kq {

class PhysicalMemory {
public:
    virtual ~PhysicalMemory() = default;

    // What holds it, for messages: "ELF vmcore", "kdump-compressed",
    // "kdump-compressed (converted from flattened)", "live kernel ...".
    virtual std::string format() const = 0;
    // Reads physical memory; short count like MemorySource::read().
    virtual size_t read_phys(uint64_t paddr, void* buf, size_t len) = 0;
    // The same bytes, for one pass over much memory (the reference scan):
    // a source that caches what it reads keeps none of it.
    virtual size_t read_phys_bulk(uint64_t paddr, void* buf, size_t len) { return read_phys(paddr, buf, len); }
    // Physical memory there is: sorted, merged [start, end) (empty: not
    // known for this format).
    virtual std::vector<std::pair<uint64_t, uint64_t>> memory_ranges() const { return {}; }
    // The physical address behind a kernel virtual address, through the
    // kernel's page tables.
    virtual std::optional<uint64_t> to_phys(uint64_t) { return std::nullopt; }
    virtual uint64_t page_size() const { return 4096; }
};

}  // namespace kq
