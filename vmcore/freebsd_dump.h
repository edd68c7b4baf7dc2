// What FreeBSD amd64 kernel dumps have in common, whichever the form
// (freebsd_minidump.h, freebsd_elf_dump.h): kernel virtual addresses are
// translated by the dump itself (no libkdumpfile: it knows no FreeBSD),
// there is no VMCOREINFO and there are no register notes (the kernel keeps
// the CPUs' contexts in dumppcb and stoppcbs[], read through its symbols).
#pragma once
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "vmcore/amd64_page_walk.h"
#include "vmcore/dump.h"
#include "vmcore/file_util.h"

namespace kq {

class FreebsdDump : public Dump {
public:
    size_t read(uint64_t vaddr, void* buf, size_t len) override;
    std::optional<uint64_t> to_phys(uint64_t vaddr) override;
    const std::string& vmcoreinfo() const override { return vmcoreinfo_; }
    const std::vector<CpuState>& cpus() const override { return cpus_; }
    bool truncated() const override { return truncated_; }

    // The same, with one line saying why instead of a short count: not
    // mapped (which page-table level), the page absent from the dump (and
    // why: the minidump's bitmap, dump_avail, the file cut off) or no page
    // tables known. Throw kq::Error.
    uint64_t translate(uint64_t vaddr);
    void read_or_throw(uint64_t vaddr, void* buf, size_t len);
    void read_phys_or_throw(uint64_t paddr, void* buf, size_t len);

    const std::string& path() const { return display_; }

protected:
    FreebsdDump(UniqueFd fd, std::string display) : fd_(std::move(fd)), display_(std::move(display)) {}

    // The translation of one address through the dump's page tables.
    // Thread-safe.
    virtual amd64::Walk walk(uint64_t vaddr) = 0;
    // Why a failed walk failed, for messages (the form's own words first).
    virtual std::string walk_failure(uint64_t vaddr, const amd64::Walk& w) { return amd64::describe(w); }
    // Why the physical page holding paddr cannot be read ("" if it can).
    virtual std::string phys_absent(uint64_t paddr) const = 0;

    // Reads one page-table entry through read_phys.
    bool read_entry(uint64_t paddr, uint64_t* entry);
    void forget_translations();

    UniqueFd fd_;
    std::string display_;
    bool truncated_ = false;

private:
    std::optional<uint64_t> page_of(uint64_t vaddr);  // physical page, cached

    std::mutex mu_;  // guards tlb_
    std::unordered_map<uint64_t, uint64_t> tlb_;  // virtual page -> physical page, or kNoPage
    std::string vmcoreinfo_;
    std::vector<CpuState> cpus_;
};

// A FreeBSD amd64 dump on `fd` (a minidump by its magic, a full dump by its
// ELF header's OS ABI "standalone"), opened; nullptr (fd untouched) if the
// file is neither. Throws kq::Error for a FreeBSD dump that cannot be used.
std::unique_ptr<Dump> open_freebsd_dump(UniqueFd& fd, const std::string& path, const DumpOptions& opts);

}  // namespace kq
