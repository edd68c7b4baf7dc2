// Internal to symbols/: an ELF file mapped read-only through libelf, with its
// section headers validated against the file size, so that nothing later
// reads past the end of a truncated file. Shared by ElfImage and the DWARF
// reader.
#pragma once
#include <gelf.h>
#include <libelf.h>

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace kq::detail {

class ElfFile {
public:
    struct Section {
        std::string name;
        GElf_Shdr shdr{};
    };

    // Throws kq::Error with one line naming the file and what is wrong with it.
    explicit ElfFile(const std::string& path);
    ~ElfFile();
    ElfFile(const ElfFile&) = delete;
    ElfFile& operator=(const ElfFile&) = delete;

    const std::string& path() const { return path_; }
    Elf* elf() const { return elf_; }
    const GElf_Ehdr& ehdr() const { return ehdr_; }
    bool little_endian() const { return ehdr_.e_ident[EI_DATA] == ELFDATA2LSB; }
    bool is64() const { return ehdr_.e_ident[EI_CLASS] == ELFCLASS64; }
    uint64_t file_size() const { return size_; }

    // All section headers, by ELF index (index 0 is the null section).
    const std::vector<Section>& sections() const { return sections_; }
    // Index of the first section of that name, 0 if none.
    unsigned find(std::string_view name) const;

    // Contents of section `index` as stored in the mapping (decompressed if
    // SHF_COMPRESSED); empty for SHT_NOBITS, index 0 or a section that cannot
    // be decompressed. Valid for the lifetime of this object.
    std::span<const uint8_t> bytes(unsigned index) const;

private:
    std::string path_;
    int fd_ = -1;
    Elf* elf_ = nullptr;
    const uint8_t* base_ = nullptr;
    uint64_t size_ = 0;
    GElf_Ehdr ehdr_{};
    std::vector<Section> sections_;
    mutable std::mutex mu_;  // elf_compress / elf_getdata on first use
};

}  // namespace kq::detail
