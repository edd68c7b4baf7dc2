// An ELF file (vmlinux, kernel.debug, a .ko) read with libelf: sections,
// symbols, build id, .modinfo.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
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
    uint64_t size = 0;
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
    // Throws kq::Error with one clear line if the file is missing or not ELF.
    static std::unique_ptr<ElfImage> open(const std::string& path);
    virtual ~ElfImage() = default;

    virtual const std::string& path() const = 0;
    virtual bool relocatable() const = 0;  // ET_REL (a .ko)
    virtual const std::vector<ElfSection>& sections() const = 0;
    const ElfSection* section(std::string_view name) const;
    // Contents of a section (empty for SHT_NOBITS or unreadable).
    virtual std::vector<uint8_t> section_data(const ElfSection& s) const = 0;

    // .symtab (or .dynsym when there is none), in file order.
    virtual const std::vector<ElfSymbol>& symbols() const = 0;
    // First defined symbol of that name.
    virtual const ElfSymbol* symbol(std::string_view name) const = 0;
    // For ET_EXEC: the function/object symbol containing addr (value <= addr < value+size,
    // or the closest preceding sized-0 symbol), nullptr if none.
    virtual const ElfSymbol* symbol_at(uint64_t addr) const = 0;

    // NT_GNU_BUILD_ID as lowercase hex, "" if absent.
    virtual std::string build_id() const = 0;
    // A key of .modinfo ("name", "vermagic", "depends"...), for .ko files.
    virtual std::optional<std::string> modinfo(std::string_view key) const = 0;
};

}  // namespace kq
