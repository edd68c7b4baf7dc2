// A kernel dump read through libkdumpfile: ELF vmcores and kdump-compressed
// files. Kernel virtual addresses are translated by libaddrxlat with the
// Linux OS type, from VMCOREINFO (KERNELOFFSET, phys_base, the page-table
// root) and the dump's page tables.
#pragma once
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "vmcore/dump.h"
#include "vmcore/dump_probe.h"
#include "vmcore/file_util.h"

struct _kdump_ctx;
struct _addrxlat_ctx;
struct _addrxlat_sys;

namespace kq {

class KdumpFile final : public Dump {
public:
    // Takes over `fd` (already identified by probe_dump_fd). `display` names
    // the file in messages (the original for a converted copy); `format` is
    // what format() reports.
    KdumpFile(UniqueFd fd, const DumpProbe& probe, std::string display, std::string format,
              const DumpOptions& opts);
    ~KdumpFile() override;
    KdumpFile(const KdumpFile&) = delete;  // (the destructor releases libkdumpfile's objects)
    KdumpFile& operator=(const KdumpFile&) = delete;

    size_t read(uint64_t vaddr, void* buf, size_t len) override;
    size_t read_phys(uint64_t paddr, void* buf, size_t len) override;

    std::string format() const override { return format_; }
    const std::string& vmcoreinfo() const override { return vmcoreinfo_; }
    const std::vector<CpuState>& cpus() const override { return cpus_; }
    bool truncated() const override { return truncated_; }
    uint64_t page_size() const override { return page_size_; }
    std::vector<std::pair<uint64_t, uint64_t>> memory_ranges() const override;
    std::optional<uint64_t> to_phys(uint64_t vaddr) override;

    // False when kernel virtual addresses cannot be translated (no
    // VMCOREINFO, or libaddrxlat refused it): read() then returns 0.
    bool can_translate() const { return translate_; }

private:
    // All with mu_ held.
    bool translate(uint64_t vaddr, uint64_t* paddr);
    size_t read_phys_cached(uint64_t paddr, uint8_t* buf, size_t len);
    size_t read_phys_direct(uint64_t paddr, uint8_t* buf, size_t len);
    size_t kdump_read_space(int space, uint64_t addr, uint8_t* buf, size_t len);

    void load_cpus();
    void check_translation(const DumpOptions& opts);

    struct Release {
        void operator()(_kdump_ctx*) const;
        void operator()(_addrxlat_ctx*) const;
        void operator()(_addrxlat_sys*) const;
    };
    UniqueFd fd_;            // outlives ctx_, which reads it
    mutable std::mutex mu_;  // guards everything below that reads are allowed to change
    std::unique_ptr<_kdump_ctx, Release> ctx_;
    std::unique_ptr<_addrxlat_ctx, Release> xctx_;
    std::unique_ptr<_addrxlat_sys, Release> xsys_;

    // A dump never changes: translations and pages, once read, are kept.
    // libkdumpfile's own cache searches linearly, so a large one is slow;
    // these are hashed. Unreadable results are kept too (scans probe a lot
    // of absent memory).
    std::unordered_map<uint64_t, uint64_t> tlb_;  // virtual page -> physical page or kNoPage
    struct Page {
        uint64_t pfn;
        uint32_t valid;  // readable bytes from the start of the page
        std::unique_ptr<uint8_t[]> data;
    };
    std::list<Page> lru_;  // most recently used first
    std::unordered_map<uint64_t, std::list<Page>::iterator> pages_;

    // ELF: physical memory the file holds (libkdumpfile reads holes between
    // segments as zeros; they must read as absent).
    std::vector<std::pair<uint64_t, uint64_t>> phys_ranges_;
    std::vector<DumpProbe::FileSegment> file_segments_;  // ELF: read with pread, not through libkdumpfile
    // Truncated kdump-compressed: pages whose data is cut off.
    std::vector<std::pair<uint64_t, uint64_t>> missing_ranges_;
    std::string display_;
    std::string format_;
    std::string vmcoreinfo_;
    std::vector<CpuState> cpus_;
    uint64_t page_size_ = 4096;
    unsigned page_shift_ = 12;
    int phys_space_;  // KDUMP_KPHYSADDR, or machine physical without an OS type
    bool truncated_ = false;
    bool translate_ = false;
};

}  // namespace kq
