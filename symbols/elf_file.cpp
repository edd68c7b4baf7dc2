#include "symbols/elf_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vmcore/memory_source.h"

namespace kq::detail {

namespace {

std::once_flag g_elf_version_once;

void init_libelf() {
    std::call_once(g_elf_version_once, [] { elf_version(EV_CURRENT); });
}

std::string elf_err() {
    const char* m = elf_errmsg(-1);
    return m ? m : "unknown libelf error";
}

}  // namespace

ElfFile::ElfFile(const std::string& path) : path_(path) {
    init_libelf();
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
    try {
        struct stat st{};
        if (fstat(fd_, &st) != 0) throw Error("cannot stat " + path + ": " + std::strerror(errno));
        if (S_ISDIR(st.st_mode)) throw Error(path + " is a directory, not an ELF file");
        size_ = static_cast<uint64_t>(st.st_size);
        if (size_ == 0) throw Error(path + " is empty, not an ELF file");

        elf_ = elf_begin(fd_, ELF_C_READ_MMAP, nullptr);
        if (!elf_) throw Error("cannot read " + path + ": " + elf_err());
        if (elf_kind(elf_) != ELF_K_ELF) throw Error(path + " is not an ELF file");

        size_t raw_size = 0;
        base_ = reinterpret_cast<const uint8_t*>(elf_rawfile(elf_, &raw_size));
        if (!base_) throw Error("cannot read " + path + ": " + elf_err());
        if (raw_size < size_) size_ = raw_size;

        if (!gelf_getehdr(elf_, &ehdr_))
            throw Error(path + " is truncated or corrupt: bad ELF header (" + elf_err() + ")");

        // libelf quietly reports no sections (or segments) when their header
        // table lies past the end of the file: check the ELF header itself.
        auto table_fits = [&](uint64_t off, uint64_t count, uint64_t entsize) {
            return off <= size_ && (entsize == 0 || count <= (size_ - off) / entsize);
        };
        if (ehdr_.e_shoff != 0 && !table_fits(ehdr_.e_shoff, std::max<uint64_t>(ehdr_.e_shnum, 1),
                                              ehdr_.e_shentsize))
            throw Error(path + " is truncated: its section headers end past the end of the file (" +
                        std::to_string(size_) + " bytes)");
        if (ehdr_.e_phoff != 0 && !table_fits(ehdr_.e_phoff, ehdr_.e_phnum, ehdr_.e_phentsize))
            throw Error(path + " is truncated: its program headers end past the end of the file (" +
                        std::to_string(size_) + " bytes)");

        size_t shnum = 0, shstrndx = 0;
        if (elf_getshdrnum(elf_, &shnum) != 0)
            throw Error(path + " is truncated or corrupt: bad section header table (" + elf_err() + ")");
        if (shnum > 0) {
            uint64_t shentsize = ehdr_.e_shentsize ? ehdr_.e_shentsize : 1;
            if (ehdr_.e_shoff > size_ || shnum > (size_ - ehdr_.e_shoff) / shentsize)
                throw Error(path + " is truncated: its section headers end past the end of the file (" +
                            std::to_string(size_) + " bytes)");
            if (elf_getshdrstrndx(elf_, &shstrndx) != 0)
                throw Error(path + " is truncated or corrupt: no section name table (" + elf_err() + ")");
        }

        sections_.resize(shnum);
        for (size_t i = 0; i < shnum; ++i) {
            Elf_Scn* scn = elf_getscn(elf_, i);
            if (!scn || !gelf_getshdr(scn, &sections_[i].shdr))
                throw Error(path + " is truncated or corrupt: section header " + std::to_string(i) +
                            " unreadable (" + elf_err() + ")");
        }
        // Names only once the string table itself is known to lie inside the file.
        auto inside = [&](const GElf_Shdr& sh) {
            return sh.sh_type == SHT_NOBITS || (sh.sh_offset <= size_ && sh.sh_size <= size_ - sh.sh_offset);
        };
        if (shstrndx >= shnum && shnum > 0)
            throw Error(path + " is corrupt: section name table index out of range");
        if (shnum > 0 && !inside(sections_[shstrndx].shdr))
            throw Error(path + " is truncated: its section name table ends past the end of the file (" +
                        std::to_string(size_) + " bytes)");
        for (size_t i = 1; i < shnum; ++i) {
            const char* n = elf_strptr(elf_, shstrndx, sections_[i].shdr.sh_name);
            sections_[i].name = n ? n : "";
            if (!inside(sections_[i].shdr))
                throw Error(path + " is truncated: section " + sections_[i].name + " ends at byte " +
                            std::to_string(sections_[i].shdr.sh_offset + sections_[i].shdr.sh_size) +
                            ", past the end of the file (" + std::to_string(size_) + " bytes)");
        }
    } catch (...) {
        if (elf_) elf_end(elf_);
        ::close(fd_);
        throw;
    }
}

ElfFile::~ElfFile() {
    if (elf_) elf_end(elf_);
    if (fd_ >= 0) ::close(fd_);
}

unsigned ElfFile::find(std::string_view name) const {
    for (size_t i = 1; i < sections_.size(); ++i)
        if (sections_[i].name == name) return static_cast<unsigned>(i);
    return 0;
}

std::span<const uint8_t> ElfFile::bytes(unsigned index) const {
    if (index == 0 || index >= sections_.size()) return {};
    const GElf_Shdr& sh = sections_[index].shdr;
    if (sh.sh_type == SHT_NOBITS || sh.sh_size == 0) return {};
    if (!(sh.sh_flags & SHF_COMPRESSED)) return {base_ + sh.sh_offset, static_cast<size_t>(sh.sh_size)};

    // Compressed debug section: let libelf inflate it once; the result stays
    // owned by the Elf handle.
    std::lock_guard lock(mu_);
    Elf_Scn* scn = elf_getscn(elf_, index);
    if (!scn) return {};
    GElf_Shdr cur{};
    if (!gelf_getshdr(scn, &cur)) return {};
    if ((cur.sh_flags & SHF_COMPRESSED) && elf_compress(scn, 0, 0) < 0) return {};
    Elf_Data* d = elf_getdata(scn, nullptr);
    if (!d || !d->d_buf) return {};
    return {static_cast<const uint8_t*>(d->d_buf), d->d_size};
}

}  // namespace kq::detail
