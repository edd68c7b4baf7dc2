#include "vmcore/freebsd_dump.h"

#include <elf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "vmcore/dump_probe.h"
#include "vmcore/freebsd_elf_dump.h"
#include "vmcore/freebsd_minidump.h"

namespace kq {
namespace {

constexpr uint64_t kNoPage = ~0ull;
constexpr size_t kTlbEntries = 1u << 16;
constexpr uint64_t kPage = amd64::kPageSize;

std::string hex(uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

}  // namespace

bool FreebsdDump::read_entry(uint64_t paddr, uint64_t* entry) {
    return read_phys(paddr, entry, sizeof *entry) == sizeof *entry;
}

void FreebsdDump::forget_translations() {
    std::lock_guard lock(mu_);
    tlb_.clear();
}

std::optional<uint64_t> FreebsdDump::page_of(uint64_t vaddr) {
    const uint64_t vpn = vaddr / kPage;
    {
        std::lock_guard lock(mu_);
        if (auto it = tlb_.find(vpn); it != tlb_.end())
            return it->second == kNoPage ? std::nullopt : std::optional<uint64_t>(it->second);
    }
    const amd64::Walk w = walk(vaddr & ~(kPage - 1));
    const uint64_t page = w.ok() ? w.paddr / kPage : kNoPage;
    std::lock_guard lock(mu_);
    if (tlb_.size() >= kTlbEntries) tlb_.clear();
    tlb_.emplace(vpn, page);
    return page == kNoPage ? std::nullopt : std::optional<uint64_t>(page);
}

std::optional<uint64_t> FreebsdDump::to_phys(uint64_t vaddr) {
    auto page = page_of(vaddr);
    if (!page) return std::nullopt;
    return *page * kPage + (vaddr & (kPage - 1));
}

size_t FreebsdDump::read(uint64_t vaddr, void* buf, size_t len) {
    if (len == 0) return 0;
    if (vaddr + (len - 1) < vaddr) len = size_t(0 - vaddr);  // stop at the end of the address space
    auto* out = static_cast<uint8_t*>(buf);
    // Page by page; physically contiguous runs in one read.
    uint64_t run_phys = 0;
    size_t run_off = 0, run_len = 0, done = 0;
    while (done < len) {
        const uint64_t va = vaddr + done;
        const size_t n = std::min<uint64_t>(len - done, kPage - (va & (kPage - 1)));
        const auto page = page_of(va);
        const uint64_t pa = page ? *page * kPage + (va & (kPage - 1)) : 0;
        if (page && run_len && pa == run_phys + run_len) {
            run_len += n;
            done += n;
            continue;
        }
        if (run_len) {
            const size_t got = read_phys(run_phys, out + run_off, run_len);
            if (got < run_len) return run_off + got;
        }
        if (!page) return done;
        run_phys = pa;
        run_off = done;
        run_len = n;
        done += n;
    }
    return run_off + read_phys(run_phys, out + run_off, run_len);
}

uint64_t FreebsdDump::translate(uint64_t vaddr) {
    const amd64::Walk w = walk(vaddr);
    if (!w.ok())
        throw Error(hex(vaddr) + " is not mapped in " + display_ + " (" + walk_failure(vaddr, w) + ")");
    return w.paddr;
}

void FreebsdDump::read_phys_or_throw(uint64_t paddr, void* buf, size_t len) {
    const size_t got = read_phys(paddr, buf, len);
    if (got == len) return;
    const uint64_t at = paddr + got;
    std::string why = phys_absent(at);
    if (why.empty()) why = "unreadable";
    throw Error("physical address " + hex(at) + " is not in " + display_ + " (" + why + ")");
}

void FreebsdDump::read_or_throw(uint64_t vaddr, void* buf, size_t len) {
    auto* out = static_cast<uint8_t*>(buf);
    size_t done = 0;
    while (done < len) {
        const uint64_t va = vaddr + done;
        const size_t n = std::min<uint64_t>(len - done, kPage - (va & (kPage - 1)));
        const uint64_t pa = translate(va);
        const size_t got = read_phys(pa, out + done, n);
        if (got < n) {
            std::string why = phys_absent(pa + got);
            if (why.empty()) why = "unreadable";
            throw Error(hex(va + got) + " (physical " + hex(pa + got) + ") is not in " + display_ + " (" + why +
                        ")");
        }
        done += n;
    }
}

std::unique_ptr<Dump> open_freebsd_dump(UniqueFd& fd, const std::string& path, const DumpOptions& opts) {
    uint8_t head[sizeof(Elf64_Ehdr)] = {};
    const size_t n = pread_full(fd.get(), head, sizeof head, 0);
    static const char kMinidump[] = "minidump FreeBSD/";
    constexpr size_t kMagicLen = sizeof kMinidump - 1;
    if (n >= 8 && std::memcmp(head, kMinidump, std::min(n, kMagicLen)) == 0) {
        if (n < kMagicLen) throw Error("truncated dump: " + path + " (cut off inside the minidump header)");
        return std::make_unique<FreebsdMinidump>(std::move(fd), path, opts);
    }
    // dumpsys_generic() marks its ELF cores "standalone"; Linux's say none.
    if (n == sizeof head && std::memcmp(head, ELFMAG, SELFMAG) == 0 && head[EI_OSABI] == ELFOSABI_STANDALONE) {
        DumpProbe probe = probe_dump_fd(fd.get(), path);
        if (probe.kind == DumpKind::Elf) return std::make_unique<FreebsdElfDump>(std::move(fd), probe, path, opts);
    }
    return nullptr;
}

}  // namespace kq
