// The running Linux kernel's memory through /proc/kcore: an ELF core the
// kernel makes up as it is read. Each PT_LOAD is a range of kernel virtual
// addresses (the image's text and data, vmalloc and module space, the
// direct map of each RAM range, vmemmap) at the file offset of its address;
// the direct map's and the image's carry their physical address too. Its
// notes hold an empty NT_PRSTATUS (no CPU's registers) and VMCOREINFO
// (KASLR offset, release, build id). Nothing is cached: every read is the
// kernel's memory at that moment. Needs root (CAP_SYS_RAWIO) and a kernel
// not locked down for confidentiality.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "vmcore/dump.h"
#include "vmcore/file_util.h"

namespace kq {

class Kcore final : public Dump {
public:
    // `path`: /proc/kcore, or a file of the same layout (tests). Throws
    // kq::Error with one line: not readable (saying what the kernel needs),
    // not an x86-64 ELF core, headers cut off, no VMCOREINFO.
    static std::unique_ptr<Kcore> open(const std::string& path);

    size_t read(uint64_t vaddr, void* buf, size_t len) override;
    bool live() const override { return true; }

    std::string format() const override { return "/proc/kcore"; }
    size_t read_phys(uint64_t paddr, void* buf, size_t len) override;
    std::vector<std::pair<uint64_t, uint64_t>> memory_ranges() const override;
    // Through the segments that carry a physical address (the direct map
    // and the kernel image); nullopt for vmalloc and module space.
    std::optional<uint64_t> to_phys(uint64_t vaddr) override;

    const std::string& vmcoreinfo() const override { return vmcoreinfo_; }
    // None: /proc/kcore holds no CPU's registers.
    const std::vector<CpuState>& cpus() const override { return cpus_; }

    struct Segment {
        uint64_t vaddr = 0, size = 0, offset = 0;
        uint64_t paddr = ~0ull;  // ~0: none
    };
    const std::vector<Segment>& segments() const { return segments_; }

private:
    Kcore(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
    void read_headers();

    UniqueFd fd_;
    std::string path_;
    std::vector<Segment> segments_;       // sorted by vaddr
    std::vector<Segment> phys_segments_;  // with a physical address, sorted by it
    std::string vmcoreinfo_;
    std::vector<CpuState> cpus_;
};

}  // namespace kq
