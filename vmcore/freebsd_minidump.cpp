#include "vmcore/freebsd_minidump.h"

#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "vmcore/dump_probe.h"

namespace kq {
namespace {

constexpr uint64_t kPage = amd64::kPageSize;
constexpr char kMagic[] = "minidump FreeBSD/amd64";
// Sections larger than these are not a kernel's.
constexpr uint64_t kMaxMsgbuf = 64ull << 20;
constexpr uint64_t kMaxBitmap = 512ull << 20;      // 16 TiB of 4 KiB pages
constexpr uint64_t kMaxPmap = 1ull << 30;          // 128 TiB of kernel address space
constexpr uint64_t kMaxDumpAvail = 1ull << 20;

// struct minidumphdr of amd64/include/minidump.h.
struct Header {
    char magic[24];
    uint32_t version;
    uint32_t msgbufsize;
    uint32_t bitmapsize;
    uint32_t pmapsize;
    uint64_t kernbase;
    uint64_t dmapbase;
    uint64_t dmapend;
    uint32_t dumpavailsize;  // version 3
};

uint64_t round_page(uint64_t x) { return (x + kPage - 1) & ~(kPage - 1); }

std::string hex(uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

}  // namespace

FreebsdMinidump::FreebsdMinidump(UniqueFd fd, std::string display, const DumpOptions& opts)
    : FreebsdDump(std::move(fd), std::move(display)) {
    const std::string& d = display_;
    struct stat st;
    if (fstat(fd_.get(), &st) != 0) throw Error("cannot open " + d + ": " + std::strerror(errno));
    file_size_ = uint64_t(st.st_size);

    Header h{};
    if (pread_full(fd_.get(), &h, sizeof h, 0) < offsetof(Header, dumpavailsize))
        throw Error("truncated dump: " + d + " (cut off inside the minidump header)");
    const std::string magic(h.magic, strnlen(h.magic, sizeof h.magic));
    if (magic != kMagic) {
        std::string arch = magic.substr(std::min<size_t>(magic.size(), 17));
        for (char& c : arch)
            if (c < 0x20 || c > 0x7e) c = '?';
        throw Error("unsupported dump: " + d + " (minidump of FreeBSD/" + arch +
                    "; only FreeBSD/amd64 dumps are supported)");
    }
    version_ = h.version;
    if (version_ == 1)
        throw Error("unsupported dump: " + d + " (FreeBSD/amd64 minidump version 1, of FreeBSD 7; versions 2 and 3 "
                    "are supported)");
    if (version_ != 2 && version_ != 3)
        throw Error("unsupported dump: " + d + " (FreeBSD/amd64 minidump version " + std::to_string(version_) +
                    "; versions 2 and 3 are supported)");
    const uint64_t avail_size = version_ >= 3 ? h.dumpavailsize : 0;
    if (h.msgbufsize > kMaxMsgbuf || h.bitmapsize > kMaxBitmap || h.pmapsize > kMaxPmap ||
        avail_size > kMaxDumpAvail || h.pmapsize % kPage || h.dmapbase > h.dmapend)
        throw Error("corrupt dump: " + d + " (invalid minidump header)");
    kernbase_ = h.kernbase;
    dmapbase_ = h.dmapbase;
    dmapend_ = h.dmapend;

    // Sections, each page aligned, after the header page.
    const uint64_t msgbuf_off = kPage;
    const uint64_t avail_off = msgbuf_off + round_page(h.msgbufsize);
    const uint64_t bitmap_off = avail_off + round_page(avail_size);
    const uint64_t pmap_off = bitmap_off + round_page(h.bitmapsize);
    data_off_ = pmap_off + round_page(h.pmapsize);
    struct Section {
        const char* name;
        uint64_t off, size;
    };
    for (const Section& s : {Section{"message buffer", msgbuf_off, h.msgbufsize},
                             Section{"dump_avail", avail_off, avail_size},
                             Section{"page bitmap", bitmap_off, h.bitmapsize},
                             Section{"page directories", pmap_off, h.pmapsize}}) {
        if (s.off + s.size > file_size_)
            throw Error("truncated dump: " + d + " (cut off inside the minidump's " + s.name + " at " +
                        human_size(file_size_) + ")");
    }
    auto read_section = [&](void* buf, uint64_t size, uint64_t off) {
        if (pread_full(fd_.get(), buf, size, off) != size)
            throw Error("cannot read dump: " + d + " (" + std::strerror(errno ? errno : EIO) + ")");
    };

    msgbuf_.resize(h.msgbufsize);
    read_section(msgbuf_.data(), h.msgbufsize, msgbuf_off);

    if (version_ >= 3) {
        std::vector<uint64_t> a(avail_size / 8);
        read_section(a.data(), a.size() * 8, avail_off);
        for (size_t i = 0; i + 1 < a.size() && (a[i] || a[i + 1]); i += 2) {
            if (a[i] >= a[i + 1] || (!avail_.empty() && a[i] < avail_.back().second))
                throw Error("corrupt dump: " + d + " (dump_avail range " + hex(a[i]) + "-" + hex(a[i + 1]) +
                            " out of order)");
            avail_.emplace_back(a[i], a[i + 1]);
        }
        if (avail_.empty()) throw Error("corrupt dump: " + d + " (empty dump_avail)");
    } else {
        // Version 2: the bitmap covers physical memory from 0.
        avail_.emplace_back(0, uint64_t(h.bitmapsize) * 8 * kPage);
    }

    bitmap_.resize((uint64_t(h.bitmapsize) + 7) / 8);
    read_section(bitmap_.data(), h.bitmapsize, bitmap_off);
    rank_.resize(bitmap_.size() + 1);
    for (size_t i = 0; i < bitmap_.size(); ++i) rank_[i + 1] = rank_[i] + uint64_t(std::popcount(bitmap_[i]));

    pmap_.resize(h.pmapsize / 8);
    read_section(pmap_.data(), h.pmapsize, pmap_off);

    // Dumped memory: runs of set bits, a word at a time.
    const uint64_t pages = rank_.back();
    const uint64_t nbits = bitmap_.size() * 64;
    uint64_t bit = 0;
    for (const auto& [start, end] : avail_) {
        const uint64_t first = start / kPage, count = (end + kPage - 1) / kPage - first;
        const uint64_t stop = std::min(bit + count, nbits);
        for (uint64_t b = bit; b < stop;) {
            const uint64_t w = bitmap_[b / 64] >> (b % 64);
            if (w == 0) {
                b = (b / 64 + 1) * 64;
                continue;
            }
            const uint64_t zeros = uint64_t(std::countr_zero(w));
            if (zeros) {
                b += zeros;
                continue;
            }
            const uint64_t run = std::min<uint64_t>(uint64_t(std::countr_one(w)), stop - b);
            const uint64_t pa = (first + b - bit) * kPage;
            if (!ranges_.empty() && ranges_.back().second == pa)
                ranges_.back().second = pa + run * kPage;
            else
                ranges_.emplace_back(pa, pa + run * kPage);
            b += run;
        }
        bit += count;
    }
    if (data_off_ + pages * kPage > file_size_) {
        if (pages && data_off_ >= file_size_)
            throw Error("truncated dump: " + d + " (cut off before the minidump's first page of memory, at " +
                        human_size(file_size_) + ")");
        truncated_ = true;
        if (opts.note)
            opts.note(opts.note_ctx, "truncated dump: " + d + " holds " + human_size(file_size_) + " of " +
                                         human_size(data_off_ + pages * kPage) +
                                         "; memory beyond that is unreadable");
    }
}

std::string FreebsdMinidump::format() const { return "FreeBSD minidump (version " + std::to_string(version_) + ")"; }

std::optional<uint64_t> FreebsdMinidump::bit_of(uint64_t paddr) const {
    uint64_t before = 0;
    for (const auto& [start, end] : avail_) {
        const uint64_t first = start / kPage, count = (end + kPage - 1) / kPage - first;
        if (paddr >= first * kPage && paddr / kPage < first + count) return before + paddr / kPage - first;
        before += count;
    }
    return std::nullopt;
}

uint64_t FreebsdMinidump::page_offset(uint64_t bit) const {
    const uint64_t word = bit / 64;
    const uint64_t below = bitmap_[word] & ((1ull << (bit % 64)) - 1);
    return data_off_ + (rank_[word] + uint64_t(std::popcount(below))) * kPage;
}

size_t FreebsdMinidump::read_phys(uint64_t paddr, void* buf, size_t len) {
    auto* out = static_cast<uint8_t*>(buf);
    size_t done = 0;
    // Page by page; pages next to each other in the file in one read.
    uint64_t run_off = 0;
    size_t run_at = 0, run_len = 0;
    while (done < len) {
        const uint64_t pa = paddr + done;
        if (pa < paddr) break;  // wrapped
        const size_t n = std::min<uint64_t>(len - done, kPage - (pa & (kPage - 1)));
        const auto bit = bit_of(pa);
        if (!bit || !bit_set(*bit)) break;
        const uint64_t off = page_offset(*bit) + (pa & (kPage - 1));
        if (off + n > file_size_) break;  // cut off
        if (run_len && off == run_off + run_len) {
            run_len += n;
        } else {
            if (run_len && pread_full(fd_.get(), out + run_at, run_len, run_off) != run_len) return run_at;
            run_off = off;
            run_at = done;
            run_len = n;
        }
        done += n;
    }
    if (run_len) {
        const size_t got = pread_full(fd_.get(), out + run_at, run_len, run_off);
        if (got != run_len) return run_at + got;
    }
    return done;
}

amd64::Walk FreebsdMinidump::walk(uint64_t vaddr) {
    amd64::Walk w;
    if (vaddr >= kernbase_) {
        const uint64_t index = (vaddr - kernbase_) / amd64::kPageSize2M;
        if (index >= pmap_.size()) return w;  // level 0: beyond the page directories
        return amd64::walk_pde(pmap_[index], amd64::kNoAddress, vaddr,
                               [this](uint64_t pa, uint64_t* e) { return read_entry(pa, e); });
    }
    if (vaddr >= dmapbase_ && vaddr < dmapend_) {
        w.status = amd64::Walk::Ok;
        w.paddr = vaddr - dmapbase_;
        w.page_size = kPage;
    }
    return w;  // level 0: outside what a minidump maps
}

std::string FreebsdMinidump::walk_failure(uint64_t vaddr, const amd64::Walk& w) {
    if (w.level == 0) {
        if (vaddr >= kernbase_)
            return "beyond the kernel page directories the minidump holds, which end at " +
                   hex(kernbase_ + pmap_.size() * amd64::kPageSize2M);
        return "outside the kernel address space a minidump holds: from " + hex(kernbase_) + " and the direct map " +
               hex(dmapbase_) + "-" + hex(dmapend_);
    }
    if (w.status == amd64::Walk::TableMissing)
        return "its page table at physical " + hex(w.entry_paddr & amd64::kFrame) + " is not in the minidump (" +
               phys_absent(w.entry_paddr) + ")";
    return amd64::describe(w);
}

std::string FreebsdMinidump::phys_absent(uint64_t paddr) const {
    const auto bit = bit_of(paddr);
    if (!bit) return "outside dump_avail: not memory the kernel dumps";
    if (!bit_set(*bit)) return "its page is absent from the minidump's page bitmap";
    if (page_offset(*bit) + kPage > file_size_)
        return "its page lies beyond the end of the truncated file, at " + human_size(file_size_);
    return "";
}

}  // namespace kq
