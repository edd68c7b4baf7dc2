// An ELF file (vmlinux, kernel.debug, a .ko) read with libelf: sections,
// symbols, build id, .modinfo.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kq {

struct ElfSection {
    std::string name;
    unsigned index = 0;
    uint32_t type = 0;    // SHT_*
    uint64_t flags = 0;   // SHF_*
    uint64_t addr = 0;    // sh_addr (0 in an ET_REL file)
    uint64_t size = 0;    // sh_size: as stored (compressed size if SHF_COMPRESSED)
    uint64_t offset = 0;  // file offset
    uint64_t align = 0;
};

struct ElfSymbol {
    std::string name;
    uint64_t value = 0;  // address (ET_EXEC) or offset within its section (ET_REL)
    uint64_t size = 0;
    uint8_t type = 0;    // STT_*
    uint8_t bind = 0;    // STB_*
    uint16_t shndx = 0;
};

class ElfImage {
public:
    // Throws kq::Error with one clear line if the file is missing, not ELF or
    // truncated (a section or the section headers past the end of the file).
    // The file is mapped, not read: opening a large vmlinux is cheap.
    static std::unique_ptr<ElfImage> open(const std::string& path);
    virtual ~ElfImage() = default;

    virtual const std::string& path() const = 0;
    virtual bool relocatable() const = 0;  // ET_REL (a .ko)
    virtual const std::vector<ElfSection>& sections() const = 0;
    const ElfSection* section(std::string_view name) const;
    // Contents of a section (empty for SHT_NOBITS or unreadable).
    virtual std::vector<uint8_t> section_data(const ElfSection& s) const = 0;
    // The same without a copy: a view into the mapped file (decompressed once
    // if SHF_COMPRESSED), valid as long as this image lives.
    virtual std::span<const uint8_t> section_bytes(const ElfSection& s) const = 0;
    // For ET_EXEC/ET_DYN: up to len bytes of file contents at virtual address
    // addr, from the allocated section holding it (clipped at the section's
    // end); empty if no section with file contents holds addr.
    virtual std::span<const uint8_t> bytes_at(uint64_t addr, size_t len) const = 0;

    // .symtab (or .dynsym when there is none), in file order.
    virtual const std::vector<ElfSymbol>& symbols() const = 0;
    // First defined symbol of that name.
    virtual const ElfSymbol* symbol(std::string_view name) const = 0;
    // For ET_EXEC: the function/object symbol containing addr (value <= addr < value+size,
    // or the closest preceding sized-0 symbol), nullptr if none.
    // Indexed: STT_FUNC, STT_OBJECT, and STT_NOTYPE labels in executable
    // sections (assembly entry points such as ret_from_fork). Where several
    // start at one address, FUNC/OBJECT win over NOTYPE, then GLOBAL over WEAK
    // over LOCAL. O(log n).
    // Symbols of an ET_REL file hold section offsets, so there symbol_at()
    // returns nullptr: use symbol_in_section() instead.
    virtual const ElfSymbol* symbol_at(uint64_t addr) const = 0;
    // The same rule within section `shndx`, offset measured from its start
    // (ET_REL); for ET_EXEC/ET_DYN, offset is from the section's sh_addr.
    virtual const ElfSymbol* symbol_in_section(unsigned shndx, uint64_t offset) const = 0;

    // NT_GNU_BUILD_ID as lowercase hex, "" if absent.
    virtual std::string build_id() const = 0;
    // A key of .modinfo ("name", "vermagic", "depends"...), for .ko files.
    virtual std::optional<std::string> modinfo(std::string_view key) const = 0;
};

}  // namespace kq
