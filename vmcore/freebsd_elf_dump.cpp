#include "vmcore/freebsd_elf_dump.h"

#include <algorithm>
#include <cstdio>

namespace kq {
namespace {

constexpr uint64_t kKernbase = 0xffffffff80000000;  // amd64 KERNBASE, if the kernel lacks the symbol

std::string hex(uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

}  // namespace

FreebsdElfDump::FreebsdElfDump(UniqueFd fd, const DumpProbe& probe, std::string display, const DumpOptions& opts)
    : FreebsdDump(std::move(fd), std::move(display)), segments_(probe.file_segments) {
    if (segments_.empty())
        throw Error("corrupt dump: " + display_ + " (no memory segment with a physical address)");
    for (const auto& s : segments_) {
        if (!ranges_.empty() && ranges_.back().second == s.paddr)
            ranges_.back().second += s.size;
        else
            ranges_.emplace_back(s.paddr, s.paddr + s.size);
    }
    auto note = [&](const std::string& line) {
        if (opts.note) opts.note(opts.note_ctx, line);
    };
    if (probe.truncated()) {
        truncated_ = true;
        note("truncated dump: " + display_ + " holds " + human_size(probe.file_size) + " of " +
             human_size(probe.needed_size) + "; memory beyond that is unreadable");
    }

    const auto kpml4 = opts.kernel_symbol ? opts.kernel_symbol("KPML4phys") : std::nullopt;
    if (!kpml4) {
        note("kernel virtual addresses of " + display_ +
             " cannot be translated yet: a FreeBSD full dump needs the kernel's KPML4phys symbol");
        return;
    }
    const auto kernbase = opts.kernel_symbol("kernbase");
    try {
        find_page_tables(*kpml4, kernbase.value_or(kKernbase));
    } catch (const Error& e) {
        note(std::string("kernel virtual addresses cannot be translated: ") + e.what());
    }
}

void FreebsdElfDump::find_page_tables(uint64_t kpml4phys_symbol, uint64_t kernbase_symbol) {
    // The kernel image lies at physical address = virtual - kernbase.
    uint64_t pml4 = 0;
    const uint64_t at = kpml4phys_symbol - kernbase_symbol;
    if (kpml4phys_symbol < kernbase_symbol || read_phys(at, &pml4, sizeof pml4) != sizeof pml4)
        throw Error("KPML4phys (physical " + hex(at) + ") is not in " + display_);
    uint64_t first = 0;
    if (pml4 % amd64::kPageSize || read_phys(pml4, &first, sizeof first) != sizeof first)
        throw Error("KPML4phys of " + display_ + " holds " + hex(pml4) + ", not a page-table page in the dump");
    set_page_tables(pml4);
}

void FreebsdElfDump::set_page_tables(uint64_t pml4_paddr) {
    pml4_ = pml4_paddr;
    forget_translations();
}

size_t FreebsdElfDump::read_phys(uint64_t paddr, void* buf, size_t len) {
    auto* out = static_cast<uint8_t*>(buf);
    size_t done = 0;
    auto seg = std::upper_bound(segments_.begin(), segments_.end(), paddr,
                                [](uint64_t a, const DumpProbe::FileSegment& s) { return a < s.paddr; });
    if (seg == segments_.begin()) return 0;
    --seg;
    while (done < len && seg != segments_.end()) {
        const uint64_t pa = paddr + done;
        if (pa < seg->paddr || pa - seg->paddr >= seg->size) break;
        const size_t n = std::min<uint64_t>(len - done, seg->size - (pa - seg->paddr));
        const size_t got = pread_full(fd_.get(), out + done, n, seg->offset + (pa - seg->paddr));
        done += got;
        if (got < n) break;
        ++seg;
    }
    return done;
}

amd64::Walk FreebsdElfDump::walk(uint64_t vaddr) {
    if (!pml4_) return amd64::Walk{};
    return amd64::walk_pml4(*pml4_, vaddr, [this](uint64_t pa, uint64_t* e) { return read_entry(pa, e); });
}

std::string FreebsdElfDump::walk_failure(uint64_t vaddr, const amd64::Walk& w) {
    if (!pml4_) return "the kernel's page tables are not known: the kernel's KPML4phys symbol is needed";
    return amd64::describe(w);
}

std::string FreebsdElfDump::phys_absent(uint64_t paddr) const {
    for (const auto& [a, b] : ranges_)
        if (paddr >= a && paddr < b) return "";
    return truncated_ ? "not in the dump's memory segments, or beyond the end of the truncated file"
                      : "not in the dump's memory segments";
}

}  // namespace kq
