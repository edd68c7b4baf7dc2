#include "vmcore/kdump_file.h"

#include <dlfcn.h>
#include <libkdumpfile/kdumpfile.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace kq {
namespace {

// libkdumpfile's own page cache: it searches it linearly, so keep it small;
// it holds mostly page tables and what large direct reads pass through.
constexpr kdump_num_t kLibCachePages = 256;
// Pages kept here (decompressed, checked): 16 MiB of 4 KiB pages.
constexpr size_t kCachedPages = 4096;
// Translations kept (a 4 KiB page each): 256 MiB of kernel address space.
constexpr size_t kTlbEntries = 1u << 16;
// Reads longer than this bypass the page cache (bulk copies and scans).
constexpr size_t kDirectRead = 64 * 1024;
constexpr uint64_t kNoPage = ~0ull;

// libkdumpfile's names of the pr_reg fields, in Reg order.
constexpr const char* kRegNames[] = {
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11",      "r10",     "r9",
    "r8",  "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip",     "cs",
    "rflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
};
static_assert(std::size(kRegNames) == static_cast<size_t>(Reg::count));

// struct elf_prstatus of x86-64.
constexpr size_t kPrPidOffset = 32;
constexpr size_t kPrRegOffset = 112;

// libaddrxlat, which libkdumpfile loads: translating a virtual address on
// its own (not through kdump_read) lets a read check the physical page
// against what the file holds. Looked up at run time because the build
// links only libkdumpfile; without it reads use KDUMP_KVADDR directly.
struct Addrxlat {
    decltype(&addrxlat_fulladdr_conv) conv = nullptr;
    decltype(&addrxlat_ctx_decref) ctx_decref = nullptr;
    decltype(&addrxlat_sys_decref) sys_decref = nullptr;
};

const Addrxlat* addrxlat_api() {
    static const Addrxlat api = [] {
        Addrxlat a;
        a.conv = reinterpret_cast<decltype(a.conv)>(dlsym(RTLD_DEFAULT, "addrxlat_fulladdr_conv"));
        a.ctx_decref = reinterpret_cast<decltype(a.ctx_decref)>(dlsym(RTLD_DEFAULT, "addrxlat_ctx_decref"));
        a.sys_decref = reinterpret_cast<decltype(a.sys_decref)>(dlsym(RTLD_DEFAULT, "addrxlat_sys_decref"));
        return a;
    }();
    return api.conv && api.ctx_decref && api.sys_decref ? &api : nullptr;
}

void note(const DumpOptions& opts, const std::string& line) {
    if (opts.note) opts.note(opts.note_ctx, line);
}

std::string err_text(kdump_ctx_t* ctx, kdump_status st) {
    const char* e = kdump_get_err(ctx);
    return e && *e ? e : kdump_strerror(st);
}

}  // namespace

KdumpFile::KdumpFile(UniqueFd fd, const DumpProbe& probe, std::string display, std::string format,
                     const DumpOptions& opts)
    : fd_(std::move(fd)),
      phys_ranges_(probe.phys_ranges),
      file_segments_(probe.file_segments),
      missing_ranges_(probe.missing_ranges),
      display_(std::move(display)),
      format_(std::move(format)) {
    phys_space_ = KDUMP_KPHYSADDR;
    ctx_.reset(kdump_new());
    if (!ctx_) throw Error("cannot open " + display_ + ": out of memory");
    kdump_ctx_t* ctx = ctx_.get();

    // mmap the dump (much faster than read(2) through libkdumpfile's file
    // cache) unless it is cut short: reading a mapped page past the end of
    // the file is SIGBUS, not an error.
    kdump_set_number_attr(ctx, KDUMP_ATTR_FILE_MMAP_POLICY,
                          probe.truncated() ? KDUMP_MMAP_NEVER : KDUMP_MMAP_TRY);
    // The probe saw an x86-64 ELF machine or kdump header. Say so up front:
    // QEMU's kdump-compressed header fills in only utsname.machine, which
    // libkdumpfile ignores, and without an architecture it skips the CPU
    // notes and cannot read memory at all.
    if (probe.kind == DumpKind::Elf || probe.kind == DumpKind::Kdump)
        kdump_set_string_attr(ctx, KDUMP_ATTR_ARCH_NAME, KDUMP_ARCH_X86_64);

    kdump_status st = kdump_open_fd(ctx, fd_.get());
    if (st != KDUMP_OK) {
        std::string why = err_text(ctx, st);
        for (char& c : why)
            if (c == '\n' || c == '\r') c = ' ';
        if (probe.kind == DumpKind::Other && why.find("Unknown file format") != std::string::npos)
            throw Error("not a kernel dump: " + display_ + " (unrecognised format)");
        if (probe.truncated()) throw Error("truncated dump: " + display_ + " (" + why + ")");
        throw Error("cannot read dump: " + display_ + " (" + why + ")");
    }
    if (format_.empty()) {
        const char* f = nullptr;
        if (kdump_get_string_attr(ctx, KDUMP_ATTR_FILE_FORMAT, &f) == KDUMP_OK && f) format_ = f;
        if (format_.empty()) format_ = "unknown";
    }
    kdump_set_number_attr(ctx, "cache.size", kLibCachePages);

    kdump_num_t ps = 0;
    if (kdump_get_number_attr(ctx, KDUMP_ATTR_PAGE_SIZE, &ps) == KDUMP_OK && ps && (ps & (ps - 1)) == 0)
        page_size_ = ps;
    page_shift_ = unsigned(__builtin_ctzll(page_size_));

    const char* arch = nullptr;
    if (kdump_get_string_attr(ctx, KDUMP_ATTR_ARCH_NAME, &arch) != KDUMP_OK || !arch ||
        std::string_view(arch) != KDUMP_ARCH_X86_64) {
        throw Error("unsupported dump: " + display_ + " (" + (arch ? std::string(arch) : "unknown") +
                    " kernel; only x86-64 kernel dumps are supported)");
    }

    // The attribute, not kdump_vmcoreinfo_raw(): that one wants the OS
    // type set first, which wants VMCOREINFO.
    kdump_attr_t vmci;
    vmci.type = KDUMP_BLOB;
    if (kdump_get_typed_attr(ctx, "linux.vmcoreinfo.raw", &vmci) == KDUMP_OK) {
        const auto* p = static_cast<const char*>(kdump_blob_pin(vmci.val.blob));
        if (p) vmcoreinfo_.assign(p, strnlen(p, kdump_blob_size(vmci.val.blob)));
        kdump_blob_unpin(vmci.val.blob);
    }

    if (probe.truncated()) {
        truncated_ = true;
        note(opts, "truncated dump: " + display_ + " holds " + human_size(probe.file_size) + " of " +
                       human_size(probe.needed_size) + "; memory beyond that is unreadable");
    }

    if (vmcoreinfo_.empty()) {
        note(opts, "no VMCOREINFO in " + display_ +
                       ": kernel virtual addresses cannot be translated (QEMU needs -device vmcoreinfo)");
    } else {
        st = kdump_set_string_attr(ctx, KDUMP_ATTR_OSTYPE, "linux");
        addrxlat_ctx_t* xctx = nullptr;
        addrxlat_sys_t* xsys = nullptr;
        if (st == KDUMP_OK && addrxlat_api()) {
            st = kdump_get_addrxlat(ctx, &xctx, &xsys);
            xctx_.reset(xctx);
            xsys_.reset(xsys);
        }
        if (st == KDUMP_OK) {
            translate_ = true;
            check_translation(opts);
        } else {
            note(opts, "kernel virtual addresses of " + display_ + " cannot be translated: " + err_text(ctx, st));
        }
    }
    // Without the Linux OS type libkdumpfile has no kernel physical address
    // space; on x86-64 outside Xen it is the machine's.
    if (!translate_) phys_space_ = KDUMP_MACHPHYSADDR;
    load_cpus();
}

KdumpFile::~KdumpFile() = default;

void KdumpFile::Release::operator()(_kdump_ctx* c) const { kdump_free(c); }
void KdumpFile::Release::operator()(_addrxlat_ctx* c) const { addrxlat_api()->ctx_decref(c); }
void KdumpFile::Release::operator()(_addrxlat_sys* s) const { addrxlat_api()->sys_decref(s); }

void KdumpFile::load_cpus() {
    kdump_num_t n = 0;
    if (kdump_get_number_attr(ctx_.get(), KDUMP_ATTR_NUM_CPUS, &n) != KDUMP_OK) return;
    for (kdump_num_t i = 0; i < n; ++i) {
        CpuState cpu;
        cpu.cpu = static_cast<int>(i);
        const std::string base = "cpu." + std::to_string(i) + ".";

        // The raw NT_PRSTATUS note, present for ELF and kdump-compressed.
        kdump_attr_t attr;
        attr.type = KDUMP_BLOB;
        bool done = false;
        if (kdump_get_typed_attr(ctx_.get(), (base + "PRSTATUS").c_str(), &attr) == KDUMP_OK) {
            kdump_blob_t* blob = attr.val.blob;
            const auto* p = static_cast<const uint8_t*>(kdump_blob_pin(blob));
            const size_t size = kdump_blob_size(blob);
            if (p && size >= kPrRegOffset + 8 * static_cast<size_t>(Reg::count)) {
                std::memcpy(&cpu.pid, p + kPrPidOffset, sizeof cpu.pid);
                for (unsigned r = 0; r < static_cast<unsigned>(Reg::count); ++r) {
                    uint64_t v;
                    std::memcpy(&v, p + kPrRegOffset + 8 * r, sizeof v);
                    cpu.regs.set(static_cast<Reg>(r), v);
                }
                done = true;
            }
            kdump_blob_unpin(blob);
        }
        if (!done) {
            // Registers libkdumpfile decoded one by one.
            kdump_num_t v;
            if (kdump_get_number_attr(ctx_.get(), (base + "pid").c_str(), &v) == KDUMP_OK)
                cpu.pid = static_cast<uint32_t>(v);
            for (unsigned r = 0; r < static_cast<unsigned>(Reg::count); ++r)
                if (kdump_get_number_attr(ctx_.get(), (base + "reg." + kRegNames[r]).c_str(), &v) == KDUMP_OK)
                    cpu.regs.set(static_cast<Reg>(r), v);
        }
        cpus_.push_back(cpu);
    }
}

void KdumpFile::check_translation(const DumpOptions& opts) {
    // init_uts_ns holds the release string VMCOREINFO names: if reading it
    // through its virtual address finds that string, translation works.
    auto release = vmcoreinfo_value("OSRELEASE");
    auto uts = vmcoreinfo_value("SYMBOL(init_uts_ns)");
    if (!release || !uts || release->empty()) return;
    const uint64_t addr = std::strtoull(uts->c_str(), nullptr, 16);
    std::string buf(512, '\0');
    buf.resize(read(addr, buf.data(), buf.size()));
    if (buf.find(*release) == std::string::npos)
        note(opts, "warning: kernel virtual addresses of " + display_ +
                       " may be translated wrongly (init_uts_ns does not hold release " + *release + ")");
}

size_t KdumpFile::read(uint64_t vaddr, void* buf, size_t len) {
    if (!translate_ || len == 0) return 0;
    if (vaddr + (len - 1) < vaddr) len = size_t(0 - vaddr);  // stop at the end of the address space
    auto* out = static_cast<uint8_t*>(buf);
    std::lock_guard lock(mu_);
    if (!xctx_) return kdump_read_space(KDUMP_KVADDR, vaddr, out, len);

    // Translate page by page; read runs of physically contiguous pages at once.
    uint64_t run_phys = 0;
    size_t run_off = 0, run_len = 0, done = 0;
    while (done < len) {
        const uint64_t va = vaddr + done;
        const size_t n = std::min<uint64_t>(len - done, page_size_ - (va & (page_size_ - 1)));
        uint64_t pa = 0;
        const bool ok = translate(va, &pa);
        if (ok && run_len && pa == run_phys + run_len) {
            run_len += n;
            done += n;
            continue;
        }
        if (run_len) {
            const size_t got = read_phys_cached(run_phys, out + run_off, run_len);
            if (got < run_len) return run_off + got;
        }
        if (!ok) return done;
        run_phys = pa;
        run_off = done;
        run_len = n;
        done += n;
    }
    return run_off + read_phys_cached(run_phys, out + run_off, run_len);
}

std::vector<std::pair<uint64_t, uint64_t>> KdumpFile::memory_ranges() const {
    if (!phys_ranges_.empty()) return phys_ranges_;
    // kdump-compressed: everything below max_pfn, less what the file lacks.
    std::lock_guard lock(mu_);
    kdump_num_t max_pfn = 0;
    if (kdump_get_number_attr(ctx_.get(), "max_pfn", &max_pfn) != KDUMP_OK || max_pfn == 0) return {};
    std::vector<std::pair<uint64_t, uint64_t>> r;
    uint64_t at = 0;
    const uint64_t end = uint64_t(max_pfn) << page_shift_;
    for (const auto& [a, b] : missing_ranges_) {
        if (a >= end) break;
        if (a > at) r.emplace_back(at, a);
        at = std::max(at, b);
    }
    if (at < end) r.emplace_back(at, end);
    return r;
}

std::optional<uint64_t> KdumpFile::to_phys(uint64_t vaddr) {
    if (!translate_) return std::nullopt;
    std::lock_guard lock(mu_);
    uint64_t pa = 0;
    if (!translate(vaddr, &pa)) return std::nullopt;
    return pa;
}

size_t KdumpFile::read_phys(uint64_t paddr, void* buf, size_t len) {
    if (len == 0) return 0;
    if (paddr + (len - 1) < paddr) len = size_t(0 - paddr);
    std::lock_guard lock(mu_);
    return read_phys_cached(paddr, static_cast<uint8_t*>(buf), len);
}

bool KdumpFile::translate(uint64_t vaddr, uint64_t* paddr) {
    const uint64_t vpn = vaddr >> page_shift_;
    const uint64_t off = vaddr & (page_size_ - 1);
    if (auto it = tlb_.find(vpn); it != tlb_.end()) {
        if (it->second == kNoPage) return false;
        *paddr = (it->second << page_shift_) | off;
        return true;
    }
    addrxlat_fulladdr_t a;
    a.addr = vaddr & ~(page_size_ - 1);
    a.as = ADDRXLAT_KVADDR;
    const bool ok = addrxlat_api()->conv(&a, ADDRXLAT_KPHYSADDR, xctx_.get(), xsys_.get()) == ADDRXLAT_OK;
    if (tlb_.size() >= kTlbEntries) tlb_.clear();
    tlb_.emplace(vpn, ok ? a.addr >> page_shift_ : kNoPage);
    if (ok) *paddr = (a.addr & ~(page_size_ - 1)) | off;
    return ok;
}

size_t KdumpFile::read_phys_cached(uint64_t paddr, uint8_t* buf, size_t len) {
    if (len > kDirectRead) return read_phys_direct(paddr, buf, len);
    size_t done = 0;
    while (done < len) {
        const uint64_t a = paddr + done;
        const uint64_t pfn = a >> page_shift_;
        const size_t off = a & (page_size_ - 1);
        const size_t n = std::min<uint64_t>(len - done, page_size_ - off);

        Page* page;
        if (auto it = pages_.find(pfn); it != pages_.end()) {
            lru_.splice(lru_.begin(), lru_, it->second);
            page = &*it->second;
        } else {
            if (lru_.size() >= kCachedPages) {
                auto victim = std::prev(lru_.end());
                pages_.erase(victim->pfn);
                lru_.splice(lru_.begin(), lru_, victim);  // reuse its buffer
            } else {
                lru_.push_front(Page{0, 0, std::make_unique<uint8_t[]>(page_size_)});
            }
            page = &lru_.front();
            page->pfn = pfn;
            page->valid = uint32_t(read_phys_direct(pfn << page_shift_, page->data.get(), page_size_));
            pages_.emplace(pfn, lru_.begin());
        }
        if (off < page->valid) {
            const size_t m = std::min<size_t>(n, page->valid - off);
            std::memcpy(buf + done, page->data.get() + off, m);
            done += m;
            if (m < n) break;
        } else {
            // Not readable from the page start: an ELF segment can begin
            // inside a page. Rare; ask directly.
            const size_t m = read_phys_direct(a, buf + done, n);
            done += m;
            if (m < n) break;
        }
    }
    return done;
}

size_t KdumpFile::read_phys_direct(uint64_t paddr, uint8_t* buf, size_t len) {
    if (!missing_ranges_.empty()) {
        // Stop before the first missing page at or after paddr.
        auto it = std::upper_bound(missing_ranges_.begin(), missing_ranges_.end(), paddr,
                                   [](uint64_t a, const auto& r) { return a < r.second; });
        if (it != missing_ranges_.end()) {
            if (it->first <= paddr) return 0;
            len = std::min<uint64_t>(len, it->first - paddr);
        }
    }
    if (phys_ranges_.empty()) return kdump_read_space(phys_space_, paddr, buf, len);
    // ELF: a read inside one segment's file bytes is one pread (bulk reads of
    // memory scans); anything else goes through libkdumpfile.
    if (!file_segments_.empty()) {
        auto seg = std::upper_bound(file_segments_.begin(), file_segments_.end(), paddr,
                                    [](uint64_t a, const DumpProbe::FileSegment& f) { return a < f.paddr; });
        if (seg != file_segments_.begin()) {
            --seg;
            if (paddr - seg->paddr < seg->size && seg->size - (paddr - seg->paddr) >= len)
                return pread_full(fd_.get(), buf, len, seg->offset + (paddr - seg->paddr));
        }
    }
    // Only what the ELF segments hold: from the first range ending after paddr.
    size_t done = 0;
    auto it = std::upper_bound(phys_ranges_.begin(), phys_ranges_.end(), paddr,
                               [](uint64_t a, const auto& r) { return a < r.second; });
    while (done < len && it != phys_ranges_.end() && it->first <= paddr + done) {
        const uint64_t a = paddr + done;
        const size_t n = std::min<uint64_t>(len - done, it->second - a);
        const size_t got = kdump_read_space(phys_space_, a, buf + done, n);
        done += got;
        if (got < n) break;
        ++it;
    }
    return done;
}

size_t KdumpFile::kdump_read_space(int space, uint64_t addr, uint8_t* buf, size_t len) {
    const auto as = static_cast<kdump_addrspace_t>(space);
    size_t n = len;
    if (kdump_read(ctx_.get(), as, addr, buf, &n) == KDUMP_OK) return len;
    // libkdumpfile stopped at an unreadable page and said how far it got.
    // Go on page by page from there: a multi-page request can fail where
    // single pages succeed; the first page that fails on its own ends the read.
    size_t done = n <= len ? n : 0;
    while (done < len) {
        const uint64_t a = addr + done;
        const size_t chunk = std::min<uint64_t>(len - done, page_size_ - (a & (page_size_ - 1)));
        size_t m = chunk;
        if (kdump_read(ctx_.get(), as, a, buf + done, &m) == KDUMP_OK) {
            done += chunk;
            continue;
        }
        if (m < chunk) done += m;
        break;
    }
    return done;
}

}  // namespace kq
