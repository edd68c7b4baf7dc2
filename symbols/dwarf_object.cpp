#include "symbols/dwarf_object.h"

#include <elf.h>

#include <vector>

#include "vmcore/memory_source.h"

namespace kq {

uint64_t load_le_be(const uint8_t* p, unsigned n, bool le) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * (le ? i : n - 1 - i));
    return v;
}

namespace {

// ---------------------------------------------------------------------------
// Sections for libdwarf, from the mapped ELF file.

void store_le_be(uint8_t* p, unsigned n, uint64_t v, bool le) {
    for (unsigned i = 0; i < n; ++i) p[le ? i : n - 1 - i] = uint8_t(v >> (8 * i));
}

// Width in bytes of an absolute data relocation, 0 for anything else
// (debug sections only hold absolute 32/64-bit values).
unsigned abs_reloc_width(unsigned machine, unsigned type) {
    switch (machine) {
    case EM_X86_64:
        if (type == R_X86_64_64) return 8;
        if (type == R_X86_64_32 || type == R_X86_64_32S) return 4;
        return 0;
    case EM_AARCH64:
        if (type == R_AARCH64_ABS64) return 8;
        if (type == R_AARCH64_ABS32) return 4;
        return 0;
    case EM_386:
        return type == R_386_32 ? 4 : 0;
    case EM_RISCV:
        if (type == R_RISCV_64) return 8;
        if (type == R_RISCV_32) return 4;
        return 0;
    case EM_PPC64:
        if (type == R_PPC64_ADDR64) return 8;
        if (type == R_PPC64_ADDR32) return 4;
        return 0;
    case EM_S390:
        if (type == R_390_64) return 8;
        if (type == R_390_32) return 4;
        return 0;
    default:
        return 0;
    }
}

}  // namespace

class DwarfSections {
public:
    explicit DwarfSections(const std::string& path) : file_(path) {
        size_t n = file_.sections().size();
        loaded_.resize(n);
        owned_.resize(n);
        sizes_.resize(n);
        for (size_t i = 1; i < n; ++i) {
            const GElf_Shdr& sh = file_.sections()[i].shdr;
            sizes_[i] = sh.sh_size;
            if (sh.sh_flags & SHF_COMPRESSED) {
                GElf_Chdr ch;
                Elf_Scn* scn = elf_getscn(file_.elf(), i);
                sizes_[i] = (scn && gelf_getchdr(scn, &ch)) ? ch.ch_size : 0;
            }
        }
    }

    detail::ElfFile& file() { return file_; }

    // Bytes of section i as libdwarf sees them (relocated for ET_REL).
    std::span<const uint8_t> load(unsigned i) {
        if (i == 0 || i >= loaded_.size()) return {};
        if (loaded_[i].data()) return loaded_[i];
        std::span<const uint8_t> raw = file_.bytes(i);
        if (file_.ehdr().e_type == ET_REL && file_.sections()[i].name.starts_with(".debug")) {
            if (unsigned rel = reloc_section_for(i)) {
                owned_[i].assign(raw.begin(), raw.end());
                apply_relocations(rel, owned_[i]);
                raw = owned_[i];
            }
        }
        loaded_[i] = raw;
        return raw;
    }

    uint64_t size(unsigned i) const { return i < sizes_.size() ? sizes_[i] : 0; }

    // ---- Dwarf_Obj_Access_Methods
    static int get_section_info(void* obj, Dwarf_Half index, Dwarf_Obj_Access_Section* out, int* err) {
        auto* self = static_cast<DwarfSections*>(obj);
        const auto& secs = self->file_.sections();
        if (index >= secs.size()) return DW_DLV_NO_ENTRY;
        const GElf_Shdr& sh = secs[index].shdr;
        out->addr = sh.sh_addr;
        out->type = sh.sh_type;
        out->size = self->size(index);
        out->name = secs[index].name.c_str();
        // No relocation sections are announced: relocation is done in load().
        out->link = sh.sh_type == SHT_RELA || sh.sh_type == SHT_REL ? 0 : sh.sh_link;
        out->info = sh.sh_type == SHT_RELA || sh.sh_type == SHT_REL ? 0 : sh.sh_info;
        out->entrysize = sh.sh_entsize;
        if (sh.sh_type == SHT_RELA || sh.sh_type == SHT_REL) out->type = SHT_PROGBITS;
        return DW_DLV_OK;
    }
    static Dwarf_Endianness get_byte_order(void* obj) {
        return static_cast<DwarfSections*>(obj)->file_.little_endian() ? DW_OBJECT_LSB : DW_OBJECT_MSB;
    }
    static Dwarf_Small get_length_size(void* obj) {
        return static_cast<DwarfSections*>(obj)->file_.is64() ? 8 : 4;
    }
    static Dwarf_Small get_pointer_size(void* obj) {
        return static_cast<DwarfSections*>(obj)->file_.is64() ? 8 : 4;
    }
    static Dwarf_Unsigned get_section_count(void* obj) {
        return static_cast<DwarfSections*>(obj)->file_.sections().size();
    }
    static int load_section(void* obj, Dwarf_Half index, Dwarf_Small** data, int* err) {
        auto* self = static_cast<DwarfSections*>(obj);
        auto b = self->load(index);
        if (b.size() != self->size(index) || (!b.data() && self->size(index))) {
            *err = DW_DLE_SECTION_SIZE_OR_OFFSET_LARGE;
            return DW_DLV_ERROR;
        }
        // libdwarf only reads through this pointer.
        *data = const_cast<Dwarf_Small*>(reinterpret_cast<const Dwarf_Small*>(b.data()));
        return DW_DLV_OK;
    }

private:
    unsigned reloc_section_for(unsigned target) const {
        const auto& secs = file_.sections();
        for (size_t i = 1; i < secs.size(); ++i) {
            const GElf_Shdr& sh = secs[i].shdr;
            if ((sh.sh_type == SHT_RELA || sh.sh_type == SHT_REL) && sh.sh_info == target)
                return static_cast<unsigned>(i);
        }
        return 0;
    }

    void apply_relocations(unsigned rel_index, std::vector<uint8_t>& out) {
        const auto& secs = file_.sections();
        const GElf_Shdr& rsh = secs[rel_index].shdr;
        if (rsh.sh_link >= secs.size()) return;
        Elf_Scn* rscn = elf_getscn(file_.elf(), rel_index);
        Elf_Scn* sscn = elf_getscn(file_.elf(), rsh.sh_link);
        Elf_Data* rd = rscn ? elf_getdata(rscn, nullptr) : nullptr;
        Elf_Data* sd = sscn ? elf_getdata(sscn, nullptr) : nullptr;
        if (!rd || !sd || rsh.sh_entsize == 0) return;
        const bool le = file_.little_endian();
        const unsigned machine = file_.ehdr().e_machine;
        size_t n = rsh.sh_size / rsh.sh_entsize;
        for (size_t k = 0; k < n; ++k) {
            uint64_t offset, info;
            int64_t addend = 0;
            bool rela = rsh.sh_type == SHT_RELA;
            if (rela) {
                GElf_Rela r;
                if (!gelf_getrela(rd, static_cast<int>(k), &r)) break;
                offset = r.r_offset, info = r.r_info, addend = r.r_addend;
            } else {
                GElf_Rel r;
                if (!gelf_getrel(rd, static_cast<int>(k), &r)) break;
                offset = r.r_offset, info = r.r_info;
            }
            unsigned type = file_.is64() ? GELF_R_TYPE(info) : ELF32_R_TYPE(info);
            unsigned symi = file_.is64() ? GELF_R_SYM(info) : ELF32_R_SYM(info);
            unsigned width = abs_reloc_width(machine, type);
            if (!width || offset > out.size() || out.size() - offset < width) continue;
            GElf_Sym sym;
            uint64_t s = 0;
            if (symi && gelf_getsym(sd, static_cast<int>(symi), &sym)) s = sym.st_value;
            uint64_t a = rela ? static_cast<uint64_t>(addend) : load_le_be(&out[offset], width, le);
            store_le_be(&out[offset], width, s + a, le);
        }
    }

    detail::ElfFile file_;
    std::vector<std::span<const uint8_t>> loaded_;
    std::vector<std::vector<uint8_t>> owned_;
    std::vector<uint64_t> sizes_;
};

namespace {

const Dwarf_Obj_Access_Methods kMethods = {
    DwarfSections::get_section_info, DwarfSections::get_byte_order,
    DwarfSections::get_length_size,  DwarfSections::get_pointer_size,
    DwarfSections::get_section_count, DwarfSections::load_section,
    nullptr,  // relocate_a_section: done in load()
};


}  // namespace

DwarfObject::DwarfObject(const std::string& path) : path_(path), secs_(std::make_unique<DwarfSections>(path)) {}

DwarfObject::~DwarfObject() {
    if (dbg_) {
        Dwarf_Error err = nullptr;
        dwarf_object_finish(dbg_, &err);
    }
}

void DwarfObject::open() {
    if (dbg_) return;
    iface_.object = secs_.get();
    iface_.methods = &kMethods;
    Dwarf_Error err = nullptr;
    int res = dwarf_object_init_b(&iface_, nullptr, nullptr, DW_GROUPNUMBER_ANY, &dbg_, &err);
    if (res != DW_DLV_OK) {
        std::string why = res == DW_DLV_ERROR && err ? dwarf_errmsg(err) : "no DWARF sections";
        if (err) dwarf_dealloc(dbg_, err, DW_DLA_ERROR);
        dbg_ = nullptr;
        throw Error("cannot read the DWARF of " + path_ + ": " + why);
    }
}

detail::ElfFile& DwarfObject::file() { return secs_->file(); }
std::span<const uint8_t> DwarfObject::section(unsigned i) { return secs_->load(i); }
uint64_t DwarfObject::section_size(unsigned i) const { return secs_->size(i); }

}  // namespace kq
