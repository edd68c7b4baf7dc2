#include "vmcore/kcore.h"

#include <elf.h>
#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kq {
namespace {

constexpr uint64_t kMaxPhdrs = 1 << 22;  // kcore: one per RAM range and a few more; a paging dump: one per mapping
constexpr uint64_t kMaxNotes = 16 << 20;  // the notes are a few KiB (VMCOREINFO, the task struct)

std::string why_unreadable(const std::string& path, int err) {
    std::string s = "cannot read " + path + ": " + std::strerror(err);
    if (err == EACCES || err == EPERM)
        s += " (needs root with CAP_SYS_RAWIO, and a kernel not in lockdown=confidentiality)";
    else if (err == ENOENT)
        s += " (the kernel is built without CONFIG_PROC_KCORE, or /proc is not mounted)";
    return s;
}

}  // namespace

std::unique_ptr<Kcore> Kcore::open(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw Error(why_unreadable(path, errno));
    std::unique_ptr<Kcore> k(new Kcore(std::move(fd), path));
    k->read_headers();
    return k;
}

void Kcore::read_headers() {
    Elf64_Ehdr eh;
    errno = 0;
    const size_t got = pread_full(fd_.get(), &eh, sizeof eh, 0);
    if (got != sizeof eh) {
        if (errno) throw Error(why_unreadable(path_, errno));
        throw Error(path_ + " is cut off inside its ELF header");
    }
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) throw Error(path_ + " is not /proc/kcore: not an ELF file");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_type != ET_CORE ||
        eh.e_machine != EM_X86_64)
        throw Error(path_ + " is not the /proc/kcore of an x86-64 kernel (ELF class, byte order, type or machine)");
    uint64_t phnum = eh.e_phnum;
    if (phnum == PN_XNUM) {  // more than fit in e_phnum: the count is section 0's sh_info
        Elf64_Shdr sh0;
        if (eh.e_shoff == 0 || pread_full(fd_.get(), &sh0, sizeof sh0, eh.e_shoff) != sizeof sh0)
            throw Error(path_ + ": PN_XNUM program headers without a readable section header 0");
        phnum = sh0.sh_info;
    }
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || phnum == 0 || phnum > kMaxPhdrs)
        throw Error(path_ + ": implausible program headers (" + std::to_string(phnum) + " of " +
                    std::to_string(eh.e_phentsize) + " bytes)");

    std::vector<Elf64_Phdr> ph(phnum);
    const size_t want = ph.size() * sizeof(Elf64_Phdr);
    if (pread_full(fd_.get(), ph.data(), want, eh.e_phoff) != want)
        throw Error(path_ + " is cut off inside its program headers");

    for (const auto& p : ph) {
        if (p.p_type == PT_LOAD && p.p_memsz) {
            if (p.p_vaddr + p.p_memsz < p.p_vaddr) throw Error(path_ + ": a segment wraps around the address space");
            segments_.push_back({p.p_vaddr, p.p_memsz, p.p_offset, p.p_paddr});
        } else if (p.p_type == PT_NOTE && vmcoreinfo_.empty()) {
            if (p.p_filesz > kMaxNotes) throw Error(path_ + ": implausible note segment size");
            std::vector<uint8_t> n(p.p_filesz);
            if (pread_full(fd_.get(), n.data(), n.size(), p.p_offset) != n.size())
                throw Error(path_ + " is cut off inside its notes");
            size_t off = 0;
            while (off + sizeof(Elf64_Nhdr) <= n.size()) {
                Elf64_Nhdr nh;
                std::memcpy(&nh, n.data() + off, sizeof nh);
                const uint64_t name_off = off + sizeof nh;
                const uint64_t desc_off = name_off + ((uint64_t(nh.n_namesz) + 3) & ~3ull);
                const uint64_t next = desc_off + ((uint64_t(nh.n_descsz) + 3) & ~3ull);
                if (desc_off + nh.n_descsz > n.size()) break;
                std::string name(reinterpret_cast<const char*>(n.data() + name_off), nh.n_namesz);
                if (!name.empty() && name.back() == '\0') name.pop_back();
                if (name == "VMCOREINFO")
                    vmcoreinfo_.assign(reinterpret_cast<const char*>(n.data() + desc_off), nh.n_descsz);
                off = next;
            }
        }
    }
    if (segments_.empty()) throw Error(path_ + " maps no memory (no PT_LOAD segment)");
    if (vmcoreinfo_.empty())
        throw Error(path_ + " has no VMCOREINFO note (the kernel is older than 4.19 or built without CONFIG_CRASH_CORE)");
    std::sort(segments_.begin(), segments_.end(), [](const Segment& a, const Segment& b) { return a.vaddr < b.vaddr; });
    for (const auto& s : segments_)
        if (s.paddr != ~0ull) phys_segments_.push_back(s);
    std::sort(phys_segments_.begin(), phys_segments_.end(),
              [](const Segment& a, const Segment& b) { return a.paddr < b.paddr; });
}

size_t Kcore::read(uint64_t vaddr, void* buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        const uint64_t a = vaddr + done;
        auto it = std::upper_bound(segments_.begin(), segments_.end(), a,
                                   [](uint64_t v, const Segment& s) { return v < s.vaddr; });
        if (it == segments_.begin()) break;
        --it;
        if (a - it->vaddr >= it->size) break;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, it->size - (a - it->vaddr)));
        const size_t got = pread_full(fd_.get(), static_cast<char*>(buf) + done, n, it->offset + (a - it->vaddr));
        done += got;
        if (got < n) break;
    }
    return done;
}

size_t Kcore::read_phys(uint64_t paddr, void* buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        const uint64_t a = paddr + done;
        const Segment* seg = nullptr;
        for (const auto& s : phys_segments_)  // a handful: RAM ranges and the image
            if (a >= s.paddr && a - s.paddr < s.size) {
                seg = &s;
                break;
            }
        if (!seg) break;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, seg->size - (a - seg->paddr)));
        const size_t got = pread_full(fd_.get(), static_cast<char*>(buf) + done, n, seg->offset + (a - seg->paddr));
        done += got;
        if (got < n) break;
    }
    return done;
}

std::vector<std::pair<uint64_t, uint64_t>> Kcore::memory_ranges() const {
    std::vector<std::pair<uint64_t, uint64_t>> r;
    for (const auto& s : phys_segments_) {
        if (!r.empty() && s.paddr <= r.back().second)
            r.back().second = std::max(r.back().second, s.paddr + s.size);
        else
            r.emplace_back(s.paddr, s.paddr + s.size);
    }
    return r;
}

std::optional<uint64_t> Kcore::to_phys(uint64_t vaddr) {
    for (const auto& s : phys_segments_)
        if (vaddr >= s.vaddr && vaddr - s.vaddr < s.size) return s.paddr + (vaddr - s.vaddr);
    return std::nullopt;
}

}  // namespace kq
