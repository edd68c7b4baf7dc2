#include "vmcore/dump_probe.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "vmcore/file_util.h"
#include "vmcore/memory_source.h"

namespace kq {
namespace {

constexpr uint64_t kMaxNoteBytes = 64ull << 20;     // more is not a kernel's notes
constexpr uint64_t kMaxBitmapBytes = 512ull << 20;  // 16 TiB of 4 KiB pages
constexpr uint64_t kMaxCheckedDescriptors = 16ull << 20;  // 64 GiB of dumped pages, 384 MiB to read

[[noreturn]] void fail(const std::string& what, const std::string& display,
                       const std::string& why) {
    throw Error(what + ": " + display + " (" + why + ")");
}

template <class T>
T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

uint64_t load_be64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
    return v;
}

bool add_overflows(uint64_t a, uint64_t b, uint64_t* sum) { return __builtin_add_overflow(a, b, sum); }

const char* machine_name(uint16_t m) {
    switch (m) {
    case EM_386: return "i386";
    case EM_X86_64: return "x86-64";
    case EM_AARCH64: return "aarch64";
    case EM_ARM: return "arm";
    case EM_PPC: return "ppc";
    case EM_PPC64: return "ppc64";
    case EM_S390: return "s390x";
    case EM_RISCV: return "riscv";
    case EM_MIPS: return "mips";
    default: return nullptr;
    }
}

std::string describe_elf_type(uint16_t type, bool has_interp) {
    switch (type) {
    case ET_EXEC: return "ELF executable";
    case ET_DYN: return has_interp ? "ELF executable" : "ELF shared library";
    case ET_REL: return "ELF relocatable object";
    case ET_CORE: return "ELF core file";
    default: return "ELF file of type " + std::to_string(type);
    }
}

// Walks the notes of one PT_NOTE segment.
struct NoteScan {
    bool vmcoreinfo = false;
    bool user_space = false;  // NT_AUXV / NT_FILE: a process core
    unsigned prstatus = 0;
};

void scan_notes(const uint8_t* p, size_t size, NoteScan& out) {
    size_t off = 0;
    while (off + 12 <= size) {
        uint32_t namesz = load<uint32_t>(p + off);
        uint32_t descsz = load<uint32_t>(p + off + 4);
        uint32_t type = load<uint32_t>(p + off + 8);
        uint64_t name_off = off + 12;
        uint64_t desc_off = name_off + ((uint64_t(namesz) + 3) & ~3ull);
        uint64_t next = desc_off + ((uint64_t(descsz) + 3) & ~3ull);
        if (desc_off + descsz > size) break;
        std::string_view name(reinterpret_cast<const char*>(p + name_off), namesz);
        if (!name.empty() && name.back() == '\0') name.remove_suffix(1);
        if (name == "VMCOREINFO") out.vmcoreinfo = true;
        if (name == "CORE" && type == NT_PRSTATUS) ++out.prstatus;
        if ((name == "CORE" || name == "LINUX") && (type == NT_AUXV || type == 0x46494c45 /* NT_FILE */))
            out.user_space = true;
        off = next;
    }
}

DumpProbe probe_elf(int fd, const std::string& display, uint64_t size, const uint8_t* head,
                    size_t head_len) {
    DumpProbe r;
    r.kind = DumpKind::Elf;
    r.format = "ELF vmcore";
    r.file_size = size;

    if (head_len < EI_NIDENT) fail("truncated dump", display, "cut off inside the ELF header");
    const uint8_t cls = head[EI_CLASS];
    const bool le = head[EI_DATA] == ELFDATA2LSB;
    const uint16_t type = head_len >= 18 && le ? load<uint16_t>(head + 16) : 0;

    if (cls != ELFCLASS64 || !le) {
        if (type != ET_CORE && head_len >= 18 && le) fail("not a kernel dump", display, describe_elf_type(type, true));
        fail("unsupported dump", display,
             std::string(cls == ELFCLASS32 ? "32-bit" : "big-endian or unknown class") +
                 " ELF file; only x86-64 kernel dumps are supported");
    }
    if (head_len < sizeof(Elf64_Ehdr)) fail("truncated dump", display, "cut off inside the ELF header");
    Elf64_Ehdr eh;
    std::memcpy(&eh, head, sizeof eh);

    uint64_t phnum = eh.e_phnum;
    if (eh.e_type != ET_CORE) {
        // Name what it is: executables have a PT_INTERP (PIE ones are ET_DYN).
        bool interp = false;
        if (eh.e_phentsize == sizeof(Elf64_Phdr) && phnum && phnum < PN_XNUM) {
            std::vector<Elf64_Phdr> ph(phnum);
            if (pread_full(fd, ph.data(), phnum * sizeof(Elf64_Phdr), eh.e_phoff) ==
                phnum * sizeof(Elf64_Phdr))
                for (const auto& p : ph) interp |= p.p_type == PT_INTERP;
        }
        std::string what = describe_elf_type(eh.e_type, interp);
        if (eh.e_type == ET_REL && eh.e_machine == EM_X86_64) what += ", perhaps a kernel module";
        fail("not a kernel dump", display, what);
    }
    if (eh.e_machine != EM_X86_64) {
        const char* m = machine_name(eh.e_machine);
        fail("unsupported dump", display,
             std::string("ELF core of ") + (m ? m : "machine " + std::to_string(eh.e_machine)) +
                 "; only x86-64 kernel dumps are supported");
    }
    if (eh.e_phentsize != sizeof(Elf64_Phdr))
        fail("corrupt dump", display, "ELF program header size " + std::to_string(eh.e_phentsize));

    uint64_t sections_end = 0;
    // Section headers: kernel dumps need none (but the one that counts the
    // segments), yet libkdumpfile reads them all and trusts them.
    if (eh.e_shnum || eh.e_shoff) {
        uint64_t sh_end;
        if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff < sizeof eh || eh.e_shnum == 0 ||
            add_overflows(eh.e_shoff, uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr), &sh_end))
            fail("corrupt dump", display, "invalid ELF section header table");
        if (sh_end > size) fail("truncated dump", display, "cut off inside the ELF section headers at " + human_size(size));
        if (eh.e_shstrndx != SHN_UNDEF && eh.e_shstrndx != SHN_XINDEX && eh.e_shstrndx >= eh.e_shnum)
            fail("corrupt dump", display, "invalid ELF section name table index");
        std::vector<Elf64_Shdr> sh(eh.e_shnum);
        if (pread_full(fd, sh.data(), sh.size() * sizeof(Elf64_Shdr), eh.e_shoff) != sh.size() * sizeof(Elf64_Shdr))
            fail("cannot read dump", display, "error reading the ELF section headers");
        for (const auto& x : sh) {
            uint64_t end;
            if (x.sh_type == SHT_NOBITS || x.sh_type == SHT_NULL) continue;
            if (add_overflows(x.sh_offset, x.sh_size, &end) || end > (1ull << 50))
                fail("corrupt dump", display, "ELF section out of range");
            // QEMU writes .shstrtab after the memory: a cut file loses it.
            sections_end = std::max(sections_end, end);
        }
    }

    if (phnum == PN_XNUM) {
        // The real count is in the first section header's sh_info.
        Elf64_Shdr sh;
        if (eh.e_shoff == 0 || pread_full(fd, &sh, sizeof sh, eh.e_shoff) != sizeof sh)
            fail("truncated dump", display, "cut off before the ELF section header that counts the segments");
        phnum = sh.sh_info;
    }
    if (phnum == 0) fail("not a kernel dump", display, "ELF core file without segments");

    uint64_t ph_end;
    if (add_overflows(eh.e_phoff, phnum * sizeof(Elf64_Phdr), &ph_end) || phnum > (1u << 24))
        fail("corrupt dump", display, "ELF program headers out of range");
    if (ph_end > size)
        fail("truncated dump", display,
             "cut off inside the ELF program headers at " + human_size(size));
    std::vector<Elf64_Phdr> ph(phnum);
    if (pread_full(fd, ph.data(), phnum * sizeof(Elf64_Phdr), eh.e_phoff) != phnum * sizeof(Elf64_Phdr))
        fail("cannot read dump", display, "error reading the ELF program headers");

    NoteScan notes;
    uint64_t needed = std::max(ph_end, sections_end), loads = 0, note_total = 0;
    for (const auto& p : ph) {
        uint64_t end;
        if (p.p_type != PT_LOAD && p.p_type != PT_NOTE) continue;
        if (add_overflows(p.p_offset, p.p_filesz, &end))
            fail("corrupt dump", display, "ELF segment out of range");
        needed = std::max(needed, end);
        if (p.p_type == PT_LOAD) {
            ++loads;
            // Memory beyond p_filesz reads as zeros, unless the file is cut
            // inside the segment: then only what the file holds.
            uint64_t len = p.p_memsz;
            if (end > size) len = p.p_offset < size ? size - p.p_offset : 0;
            uint64_t pend;
            if (len && !add_overflows(p.p_paddr, len, &pend)) r.phys_ranges.emplace_back(p.p_paddr, pend);
            const uint64_t in_file = std::min<uint64_t>(p.p_filesz, p.p_offset < size ? size - p.p_offset : 0);
            if (in_file && !add_overflows(p.p_paddr, in_file, &pend))
                r.file_segments.push_back({p.p_paddr, p.p_offset, in_file});
            continue;
        }
        note_total += p.p_filesz;
        if (note_total > kMaxNoteBytes)
            fail("corrupt dump", display, "ELF notes of " + human_size(note_total));
        if (end > size)
            fail("truncated dump", display, "cut off inside the ELF notes at " + human_size(size));
        std::vector<uint8_t> buf(p.p_filesz);
        if (pread_full(fd, buf.data(), buf.size(), p.p_offset) != buf.size())
            fail("cannot read dump", display, "error reading the ELF notes");
        scan_notes(buf.data(), buf.size(), notes);
    }
    if (notes.user_space && !notes.vmcoreinfo)
        fail("not a kernel dump", display, "core file of a user-space process");
    if (loads == 0) fail("not a kernel dump", display, "ELF core file without memory segments");
    r.has_vmcoreinfo = notes.vmcoreinfo;
    r.needed_size = needed;

    // Several segments at physical 0 mean p_paddr is not filled in: no map.
    if (std::count_if(r.phys_ranges.begin(), r.phys_ranges.end(), [](auto& x) { return x.first == 0; }) > 1) {
        r.phys_ranges.clear();
        r.file_segments.clear();
    }
    std::sort(r.file_segments.begin(), r.file_segments.end(),
              [](const auto& a, const auto& b) { return a.paddr < b.paddr; });
    std::sort(r.phys_ranges.begin(), r.phys_ranges.end());
    std::vector<std::pair<uint64_t, uint64_t>> merged;
    for (const auto& x : r.phys_ranges) {
        if (!merged.empty() && x.first <= merged.back().second)
            merged.back().second = std::max(merged.back().second, x.second);
        else
            merged.push_back(x);
    }
    r.phys_ranges = std::move(merged);
    return r;
}

DumpProbe probe_kdump(int fd, const std::string& display, uint64_t size, const uint8_t* head,
                      size_t head_len) {
    DumpProbe r;
    r.kind = DumpKind::Kdump;
    r.format = "kdump-compressed";
    r.file_size = size;

    // struct disk_dump_header, 64-bit layout.
    if (head_len < 464) fail("truncated dump", display, "cut off inside the kdump-compressed header");
    const char* machine = reinterpret_cast<const char*>(head + 12 + 65 * 4);
    std::string mach(machine, strnlen(machine, 65));
    for (char& c : mach)
        if (c < 0x20 || c > 0x7e) c = '?';  // the message is one printable line
    if (mach != "x86_64")
        fail("unsupported dump", display,
             "kdump-compressed dump of " + (mach.empty() ? std::string("an unknown machine") : mach) +
                 "; only x86-64 kernel dumps are supported");
    const int32_t version = load<int32_t>(head + 8);
    const int32_t bs = load<int32_t>(head + 428);
    const int32_t sub_blocks = load<int32_t>(head + 432);
    const uint32_t bitmap_blocks = load<uint32_t>(head + 436);
    uint64_t max_pfn = load<uint32_t>(head + 440);
    if (bs < 1024 || bs > (1 << 20) || !std::has_single_bit(uint32_t(bs)) || sub_blocks < 0 ||
        version < 0 || bitmap_blocks == 0)
        fail("corrupt dump", display, "invalid kdump-compressed header");
    const uint64_t block = uint64_t(bs);
    const uint64_t meta_end = (1 + uint64_t(sub_blocks) + bitmap_blocks) * block;
    if (meta_end > size)
        fail("truncated dump", display,
             "cut off inside the kdump-compressed headers and page bitmaps at " + human_size(size));

    uint64_t needed = meta_end;
    if (version >= 1) {
        uint8_t sub[104] = {};
        if (pread_full(fd, sub, sizeof sub, block) != sizeof sub)
            fail("cannot read dump", display, "error reading the kdump-compressed sub-header");
        const bool split = version >= 2 && load<int32_t>(sub + 12) != 0;
        if (split)
            fail("unsupported dump", display, "one part of a split kdump-compressed dump");
        if (version >= 6) max_pfn = load<uint64_t>(sub + 96);
        for (unsigned f = 0; f < 2; ++f) {  // vmcoreinfo (v3+), notes (v4+)
            if (version < int32_t(3 + f)) continue;
            uint64_t off = load<uint64_t>(sub + 32 + 16 * f), len = load<uint64_t>(sub + 40 + 16 * f), end;
            if (!len) continue;
            if (add_overflows(off, len, &end) || len > kMaxNoteBytes)
                fail("corrupt dump", display, "kdump-compressed note area out of range");
            if (end > size)
                fail("truncated dump", display, "cut off inside the kdump-compressed notes at " + human_size(size));
            if (f == 0) r.has_vmcoreinfo = true;
            if (f == 1) {
                std::vector<uint8_t> buf(len);
                if (pread_full(fd, buf.data(), len, off) != len)
                    fail("cannot read dump", display, "error reading the kdump-compressed notes");
                NoteScan ns;
                scan_notes(buf.data(), len, ns);
                r.has_vmcoreinfo |= ns.vmcoreinfo;
            }
        }
    }

    // Page descriptors follow the bitmaps, one per page set in the bitmap of
    // dumped pages (the second half, as libkdumpfile reads it).
    uint64_t bitmap_bytes = uint64_t(bitmap_blocks) * block;
    uint64_t bitmap_off = (1 + uint64_t(sub_blocks)) * block;
    if (max_pfn <= bitmap_bytes * 8 / 2) {
        bitmap_bytes /= 2;
        bitmap_off += bitmap_bytes;
    }
    bitmap_bytes = std::min(bitmap_bytes, (max_pfn + 7) / 8);
    if (bitmap_bytes <= kMaxBitmapBytes) {
        std::vector<uint8_t> bm(bitmap_bytes);
        if (pread_full(fd, bm.data(), bm.size(), bitmap_off) != bm.size())
            fail("cannot read dump", display, "error reading the kdump-compressed page bitmap");
        if (max_pfn % 8 && !bm.empty()) bm.back() &= uint8_t((1u << (max_pfn % 8)) - 1);
        uint64_t pages = 0;
        size_t i = 0;
        for (; i + 8 <= bm.size(); i += 8) pages += std::popcount(load<uint64_t>(bm.data() + i));
        for (; i < bm.size(); ++i) pages += std::popcount(bm[i]);
        const uint64_t desc_end = meta_end + pages * 24;
        if (desc_end > size)
            fail("truncated dump", display,
                 "cut off inside the kdump-compressed page descriptors at " + human_size(size));
        needed = desc_end;
        if (pages <= kMaxCheckedDescriptors) {
            // Check every page descriptor: libkdumpfile trusts them (a page
            // larger than a page overruns its buffer), also when it reads
            // page tables on its own. Pages whose data lies past the end of
            // a cut file are noted as missing.
            constexpr uint64_t kChunk = 1 << 16;  // descriptors per read
            std::vector<uint8_t> descs;
            uint64_t pfn = 0;
            for (uint64_t first = 0; first < pages; first += kChunk) {
                const uint64_t n = std::min(kChunk, pages - first);
                descs.resize(n * 24);
                if (pread_full(fd, descs.data(), descs.size(), meta_end + first * 24) != descs.size())
                    fail("cannot read dump", display, "error reading the kdump-compressed page descriptors");
                for (uint64_t i = 0; i < n; ++i, ++pfn) {
                    while (!(bm[pfn / 8] & (1u << (pfn % 8)))) ++pfn;
                    const uint8_t* d = descs.data() + 24 * i;
                    const uint64_t off = load<uint64_t>(d);
                    const uint32_t len = load<uint32_t>(d + 8);
                    const uint32_t flags = load<uint32_t>(d + 12);
                    const bool compressed = flags & (0x1 | 0x2 | 0x4 | 0x20);
                    uint64_t end;
                    if (len == 0 || len > block || (!compressed && len != block) || off < meta_end ||
                        add_overflows(off, len, &end))
                        fail("corrupt dump", display,
                             "invalid kdump-compressed page descriptor for page " + std::to_string(pfn));
                    needed = std::max(needed, end);
                    if (end <= size) continue;
                    const uint64_t a = pfn * block;
                    if (!r.missing_ranges.empty() && r.missing_ranges.back().second == a)
                        r.missing_ranges.back().second = a + block;
                    else
                        r.missing_ranges.emplace_back(a, a + block);
                }
            }
        } else if (pages) {
            // Too many to check at open: page data is written in PFN order,
            // the last descriptor's page ends the file.
            uint8_t d[24];
            if (pread_full(fd, d, sizeof d, desc_end - 24) != sizeof d)
                fail("cannot read dump", display, "error reading the kdump-compressed page descriptors");
            uint64_t end;
            if (!add_overflows(load<uint64_t>(d), load<uint32_t>(d + 8), &end)) needed = std::max(needed, end);
        }
    }
    r.needed_size = needed;
    return r;
}

bool starts_with(const uint8_t* p, size_t len, std::string_view magic) {
    return len >= magic.size() && std::memcmp(p, magic.data(), magic.size()) == 0;
}

}  // namespace

std::string human_size(uint64_t b) {
    static const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (b < 1024) return std::to_string(b) + (b == 1 ? " byte" : " bytes");
    double v = double(b);
    int u = -1;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    snprintf(buf, sizeof buf, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

DumpProbe probe_dump_fd(int fd, const std::string& display) {
    struct stat st;
    if (fstat(fd, &st) != 0) throw Error("cannot open " + display + ": " + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) fail("not a kernel dump", display, "a directory");
    if (!S_ISREG(st.st_mode)) fail("not a kernel dump", display, "not a regular file");
    const uint64_t size = uint64_t(st.st_size);
    if (size == 0) fail("not a kernel dump", display, "empty file");

    uint8_t head[4096];
    const size_t n = pread_full(fd, head, sizeof head, 0);
    if (n == 0) throw Error("cannot read " + display + ": " + std::strerror(errno ? errno : EIO));

    if (starts_with(head, n, "\x7f" "ELF")) return probe_elf(fd, display, size, head, n);
    if (starts_with(head, n, "KDUMP   ") || starts_with(head, n, "DISKDUMP"))
        return probe_kdump(fd, display, size, head, n);
    if (starts_with(head, n, std::string_view("makedumpfile\0\0\0\0", 16))) {
        DumpProbe r;
        r.kind = DumpKind::Flattened;
        r.format = "flattened makedumpfile";
        r.file_size = size;
        if (n < 32 + 16) fail("truncated dump", display, "cut off inside the flattened header");
        if (load_be64(head + 16) != 1 || load_be64(head + 24) != 1)
            fail("unsupported dump", display,
                 "flattened makedumpfile type " + std::to_string(load_be64(head + 16)) + " version " +
                     std::to_string(load_be64(head + 24)));
        return r;
    }

    struct Magic {
        std::string_view bytes;
        const char* what;
    };
    static const Magic compressed[] = {
        {"\x1f\x8b", "gzip"},         {"\xfd" "7zXZ", "xz"}, {"\x28\xb5\x2f\xfd", "zstd"},
        {"BZh", "bzip2"},             {"\x04\x22\x4d\x18", "lz4"},
    };
    for (const auto& m : compressed)
        if (starts_with(head, n, m.bytes))
            fail("not a kernel dump", display, std::string(m.what) + "-compressed file; decompress it first");
    if (starts_with(head, n, "#!")) fail("not a kernel dump", display, "a script");
    const size_t probe_len = std::min<size_t>(n, 512);
    if (std::all_of(head, head + probe_len, [](uint8_t c) {
            return c == '\n' || c == '\r' || c == '\t' || (c >= 0x20 && c < 0x7f) || c >= 0x80;
        }))
        fail("not a kernel dump", display, "text file");

    DumpProbe r;
    r.kind = DumpKind::Other;
    r.file_size = size;
    return r;
}

}  // namespace kq
