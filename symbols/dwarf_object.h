// A libdwarf session over an ELF file read with libelf: libdwarf sees the
// file's sections through our access methods, with the debug sections of
// ET_REL files (.ko) relocated. Every DWARF reader of the project opens its
// files this way: libdwarf 20210528 crashes in dwarf_object_init_b once
// dwarf_init_path has been used in the process, so that is never called.
#pragma once
#include <libdwarf/libdwarf.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "symbols/elf_file.h"

namespace kq {

class DwarfSections;

class DwarfObject {
public:
    explicit DwarfObject(const std::string& path);  // throws kq::Error
    ~DwarfObject();
    DwarfObject(const DwarfObject&) = delete;
    DwarfObject& operator=(const DwarfObject&) = delete;

    // Starts libdwarf on the file; throws kq::Error if it finds no DWARF.
    void open();
    Dwarf_Debug dbg() const { return dbg_; }

    detail::ElfFile& file();
    // Section i as libdwarf sees it (relocated for ET_REL), and its size.
    std::span<const uint8_t> section(unsigned i);
    uint64_t section_size(unsigned i) const;

private:
    std::string path_;
    std::unique_ptr<DwarfSections> secs_;
    Dwarf_Obj_Access_Interface iface_{};
    Dwarf_Debug dbg_ = nullptr;
};

// Little- or big-endian unsigned value of n bytes.
uint64_t load_le_be(const uint8_t* p, unsigned n, bool le);

}  // namespace kq
