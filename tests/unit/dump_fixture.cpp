#include "dump_fixture.h"

#include <dirent.h>
#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace kqtest {
namespace {

template <class T>
void put(Bytes& b, size_t off, T v) {
    if (b.size() < off + sizeof v) b.resize(off + sizeof v);
    std::memcpy(b.data() + off, &v, sizeof v);
}

void put_bytes(Bytes& b, size_t off, const void* p, size_t n) {
    if (b.size() < off + n) b.resize(off + n);
    std::memcpy(b.data() + off, p, n);
}

void put_be64(Bytes& b, int64_t v) {
    uint64_t u = static_cast<uint64_t>(v);
    for (int i = 7; i >= 0; --i) b.push_back(static_cast<uint8_t>(u >> (i * 8)));
}

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// Appends one ELF note (4-byte aligned name and descriptor).
void add_note(Bytes& notes, const std::string& name, uint32_t type, const Bytes& desc) {
    size_t off = notes.size();
    put<uint32_t>(notes, off, static_cast<uint32_t>(name.size() + 1));
    put<uint32_t>(notes, off + 4, static_cast<uint32_t>(desc.size()));
    put<uint32_t>(notes, off + 8, type);
    put_bytes(notes, off + 12, name.c_str(), name.size() + 1);
    notes.resize(align_up(notes.size(), 4));
    size_t doff = notes.size();
    put_bytes(notes, doff, desc.data(), desc.size());
    notes.resize(align_up(notes.size(), 4));
}

// struct elf_prstatus of x86-64: pr_pid at 32, pr_reg at 112, 336 bytes.
Bytes prstatus(const FixtureCpu& cpu) {
    Bytes d(336, 0);
    put<uint32_t>(d, 32, cpu.pid);
    for (unsigned i = 0; i < 27; ++i) put<uint64_t>(d, 112 + 8 * i, cpu.regs[i]);
    return d;
}

Bytes make_notes(const std::string& vmcoreinfo, const std::vector<FixtureCpu>& cpus,
                 bool user_space) {
    Bytes notes;
    for (const auto& c : cpus) add_note(notes, "CORE", NT_PRSTATUS, prstatus(c));
    if (user_space) {
        add_note(notes, "CORE", NT_AUXV, Bytes(32, 0));
        add_note(notes, "CORE", 0x46494c45 /* NT_FILE */, Bytes(16, 0));
    }
    if (!vmcoreinfo.empty())
        add_note(notes, "VMCOREINFO", 0, Bytes(vmcoreinfo.begin(), vmcoreinfo.end()));
    return notes;
}

}  // namespace

FixtureCpu fixture_cpu(unsigned index) {
    FixtureCpu c;
    c.pid = index + 1;
    for (unsigned r = 0; r < 27; ++r)
        c.regs[r] = 0xC0DE000000000000ull | (uint64_t(index) << 16) | r;
    return c;
}

Bytes pattern_page(uint32_t tag) {
    Bytes p(kFixturePageSize);
    for (uint32_t off = 0; off < kFixturePageSize; off += 8)
        put<uint64_t>(p, off, (uint64_t(tag) << 32) | off);
    return p;
}

std::string vmcoreinfo_text() {
    return "OSRELEASE=6.1.0-fixture\n"
           "BUILD-ID=00112233445566778899aabbccddeeff00112233\n"
           "PAGESIZE=4096\n"
           "SYMBOL(init_uts_ns)=ffffffff81004000\n"
           "SYMBOL(init_task)=ffffffff82a14940\n"
           "SYMBOL(init_top_pgt)=ffffffff80001000\n"
           "OFFSET(task_struct.comm)=3016\n"
           "NUMBER(phys_base)=0\n"
           "NUMBER(pgtable_l5_enabled)=0\n"
           "KERNELOFFSET=0\n"
           "CRASHTIME=1700000000\n";
}

void KernelMemory::map(uint64_t vaddr, uint64_t pfn) {
    uint64_t table = 1;  // init_top_pgt
    for (int level = 3; level >= 0; --level) {
        Bytes& t = pages.try_emplace(table, Bytes(kFixturePageSize, 0)).first->second;
        const unsigned idx = (vaddr >> (12 + 9 * level)) & 0x1ff;
        uint64_t e;
        std::memcpy(&e, t.data() + 8 * idx, 8);
        if (level == 0) {
            e = (pfn << 12) | 0x63;  // present, rw, accessed, dirty
            std::memcpy(t.data() + 8 * idx, &e, 8);
            return;
        }
        if (!(e & 1)) {
            e = (next_table_pfn++ << 12) | 0x63;
            std::memcpy(t.data() + 8 * idx, &e, 8);
        }
        table = (e >> 12) & 0xffffffffffull;
    }
}

std::vector<ElfSegment> KernelMemory::elf_segments() const {
    std::vector<ElfSegment> segs;
    uint64_t prev = ~0ull;
    for (const auto& [pfn, page] : pages) {
        if (segs.empty() || pfn != prev + 1) segs.push_back({pfn * kFixturePageSize, 0, {}, 0});
        segs.back().data.insert(segs.back().data.end(), page.begin(), page.end());
        prev = pfn;
    }
    return segs;
}

KernelMemory fixture_memory() {
    KernelMemory m;
    m.pages[1] = Bytes(kFixturePageSize, 0);
    m.map(kFixtureText, 16);
    m.map(kFixtureText + 0x1000, 17);
    m.map(kFixtureText + 0x2000, 18);
    m.map(kFixtureUts, 12);
    m.pages[16] = pattern_page(16);
    m.pages[17] = pattern_page(17);
    Bytes uts(kFixturePageSize, 0);
    const char* fields[] = {"Linux", "fixture", kFixtureRelease, "#1 SMP", "x86_64"};
    for (int i = 0; i < 5; ++i) std::memcpy(uts.data() + 65 * i, fields[i], std::strlen(fields[i]));
    m.pages[12] = uts;
    return m;
}

Bytes make_elf_core(const ElfCoreSpec& spec) {
    Bytes notes = make_notes(spec.vmcoreinfo, spec.cpus, spec.user_space_notes);
    const size_t nph = 1 + spec.segments.size();
    const size_t phoff = sizeof(Elf64_Ehdr);
    const size_t notes_off = phoff + nph * sizeof(Elf64_Phdr);
    size_t data_off = align_up(notes_off + notes.size(), 4096);

    Bytes out;
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = spec.type;
    eh.e_machine = spec.machine;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = phoff;
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = static_cast<uint16_t>(nph);
    put(out, 0, eh);

    Elf64_Phdr note{};
    note.p_type = PT_NOTE;
    note.p_offset = notes_off;
    note.p_filesz = note.p_memsz = notes.size();
    put(out, phoff, note);
    put_bytes(out, notes_off, notes.data(), notes.size());

    for (size_t i = 0; i < spec.segments.size(); ++i) {
        const auto& s = spec.segments[i];
        Elf64_Phdr ph{};
        ph.p_type = PT_LOAD;
        ph.p_flags = PF_R | PF_W | PF_X;
        ph.p_offset = data_off;
        ph.p_vaddr = s.vaddr;
        ph.p_paddr = s.paddr;
        ph.p_filesz = s.data.size();
        ph.p_memsz = s.memsz ? s.memsz : s.data.size();
        ph.p_align = 4096;
        put(out, phoff + (i + 1) * sizeof(Elf64_Phdr), ph);
        put_bytes(out, data_off, s.data.data(), s.data.size());
        data_off = align_up(data_off + s.data.size(), 4096);
    }
    return out;
}

Bytes make_kdump_compressed(const KdumpSpec& spec) {
    const uint32_t bs = kFixturePageSize;
    Bytes notes = make_notes(spec.vmcoreinfo, spec.cpus, false);

    // Sub-header block(s): struct kdump_sub_header (104 bytes), then the
    // VMCOREINFO text and the notes, as makedumpfile lays them out.
    const size_t sub_struct = 104;
    const size_t vmci_rel = sub_struct;
    const size_t notes_rel = vmci_rel + spec.vmcoreinfo.size();
    const uint32_t sub_blocks = static_cast<uint32_t>(align_up(notes_rel + notes.size(), bs) / bs);

    const uint64_t bits_per_bitmap_block = uint64_t(bs) * 8;
    const uint32_t half = static_cast<uint32_t>((spec.max_pfn + bits_per_bitmap_block - 1) /
                                                bits_per_bitmap_block);
    const uint32_t bitmap_blocks = 2 * std::max<uint32_t>(half, 1);

    Bytes out;
    // struct disk_dump_header (64-bit layout).
    put_bytes(out, 0, "KDUMP   ", 8);
    put<int32_t>(out, 8, 6);  // header_version
    const char* uts[6] = {"Linux", "fixture", "6.1.0-fixture", "#1 SMP", spec.machine.c_str(), ""};
    for (int i = 0; i < 6; ++i) put_bytes(out, 12 + 65 * i, uts[i], std::strlen(uts[i]) + 1);
    put<uint32_t>(out, 424, spec.compress ? 1 : 0);  // status: zlib
    put<int32_t>(out, 428, static_cast<int32_t>(bs));
    put<int32_t>(out, 432, static_cast<int32_t>(sub_blocks));
    put<uint32_t>(out, 436, bitmap_blocks);
    put<uint32_t>(out, 440, static_cast<uint32_t>(spec.max_pfn));
    put<uint32_t>(out, 444, static_cast<uint32_t>(spec.pages.size()));
    put<uint32_t>(out, 456, 0);  // current_cpu
    put<int32_t>(out, 460, static_cast<int32_t>(spec.cpus.size()));

    const size_t sub_off = bs;
    put<uint64_t>(out, sub_off + 0, 0);    // phys_base
    put<int32_t>(out, sub_off + 8, 31);    // dump_level
    put<int32_t>(out, sub_off + 12, 0);    // split
    put<uint64_t>(out, sub_off + 32, sub_off + vmci_rel);
    put<uint64_t>(out, sub_off + 40, spec.vmcoreinfo.size());
    put<uint64_t>(out, sub_off + 48, sub_off + notes_rel);
    put<uint64_t>(out, sub_off + 56, notes.size());
    put<uint64_t>(out, sub_off + 96, spec.max_pfn);  // max_mapnr_64
    put_bytes(out, sub_off + vmci_rel, spec.vmcoreinfo.data(), spec.vmcoreinfo.size());
    put_bytes(out, sub_off + notes_rel, notes.data(), notes.size());

    const size_t bitmap_off = size_t(1 + sub_blocks) * bs;
    const size_t bitmap_half = size_t(bitmap_blocks / 2) * bs;
    Bytes bitmap(bitmap_half, 0);
    for (const auto& [pfn, page] : spec.pages) bitmap[pfn / 8] |= uint8_t(1u << (pfn % 8));
    put_bytes(out, bitmap_off, bitmap.data(), bitmap.size());                // 1st: RAM
    put_bytes(out, bitmap_off + bitmap_half, bitmap.data(), bitmap.size());  // 2nd: dumped

    const size_t desc_off = bitmap_off + size_t(bitmap_blocks) * bs;
    size_t data_off = desc_off + 24 * spec.pages.size();
    out.resize(data_off);
    size_t i = 0;
    for (const auto& [pfn, page] : spec.pages) {
        Bytes stored = page;
        uint32_t flags = 0;
        if (spec.compress) {
            uLongf clen = compressBound(page.size());
            Bytes c(clen);
            if (compress2(c.data(), &clen, page.data(), page.size(), 6) == Z_OK &&
                clen < page.size()) {
                c.resize(clen);
                stored = std::move(c);
                flags = 1;  // DUMP_DH_COMPRESSED_ZLIB
            }
        }
        put<uint64_t>(out, desc_off + 24 * i, data_off);
        put<uint32_t>(out, desc_off + 24 * i + 8, static_cast<uint32_t>(stored.size()));
        put<uint32_t>(out, desc_off + 24 * i + 12, flags);
        put<uint64_t>(out, desc_off + 24 * i + 16, 0);
        put_bytes(out, data_off, stored.data(), stored.size());
        data_off += stored.size();
        ++i;
    }
    return out;
}

Bytes flatten(const Bytes& image, size_t chunk, bool scramble) {
    std::vector<std::pair<size_t, size_t>> recs;  // offset, size
    for (size_t off = 0; off < image.size(); off += chunk)
        recs.emplace_back(off, std::min(chunk, image.size() - off));
    if (scramble && recs.size() > 2) {
        // Header record last (as a writer that fills in the header at the
        // end), the rest pairwise swapped.
        std::rotate(recs.begin(), recs.begin() + 1, recs.end());
        for (size_t i = 0; i + 1 < recs.size() - 1; i += 2) std::swap(recs[i], recs[i + 1]);
    }
    Bytes out(4096, 0);
    std::memcpy(out.data(), "makedumpfile", 12);
    Bytes be;
    put_be64(be, 1);  // type: flat header
    put_be64(be, 1);  // version
    std::memcpy(out.data() + 16, be.data(), 16);
    for (auto [off, size] : recs) {
        put_be64(out, static_cast<int64_t>(off));
        put_be64(out, static_cast<int64_t>(size));
        out.insert(out.end(), image.begin() + off, image.begin() + off + size);
    }
    put_be64(out, -1);
    put_be64(out, -1);
    return out;
}

TempDir::TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/kq-dump-test-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const Bytes& data) const {
    std::string p = file(name);
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    if (!f) throw std::runtime_error("cannot write " + p);
    return p;
}

std::vector<std::string> TempDir::list(const std::string& sub) const {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(sub.empty() ? path_ : file(sub), ec))
        names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace kqtest
