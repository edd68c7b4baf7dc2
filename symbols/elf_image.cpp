#include "symbols/elf_image.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "symbols/elf_file.h"
#include "vmcore/memory_source.h"

namespace kq {

const ElfSection* ElfImage::section(std::string_view name) const {
    for (const auto& s : sections())
        if (s.name == name) return &s;
    return nullptr;
}

namespace {

constexpr uint32_t kNone = UINT32_MAX;

class LibElfImage final : public ElfImage {
public:
    explicit LibElfImage(const std::string& path) : file_(path) {
        const auto& secs = file_.sections();
        sections_.reserve(secs.size());
        for (size_t i = 1; i < secs.size(); ++i) {
            const GElf_Shdr& sh = secs[i].shdr;
            ElfSection s;
            s.name = secs[i].name;
            s.index = static_cast<unsigned>(i);
            s.type = sh.sh_type;
            s.flags = sh.sh_flags;
            s.addr = sh.sh_addr;
            s.size = sh.sh_size;
            s.offset = sh.sh_offset;
            s.align = sh.sh_addralign;
            sections_.push_back(std::move(s));
        }
        load_symbols();
        build_address_index();
    }

    const std::string& path() const override { return file_.path(); }
    bool relocatable() const override { return file_.ehdr().e_type == ET_REL; }
    const std::vector<ElfSection>& sections() const override { return sections_; }

    std::vector<uint8_t> section_data(const ElfSection& s) const override {
        auto b = section_bytes(s);
        return {b.begin(), b.end()};
    }

    std::span<const uint8_t> section_bytes(const ElfSection& s) const override {
        return file_.bytes(s.index);
    }

    std::span<const uint8_t> bytes_at(uint64_t addr, size_t len) const override {
        if (relocatable()) return {};
        for (const auto& s : sections_) {
            if (!(s.flags & SHF_ALLOC) || s.type == SHT_NOBITS || s.size == 0) continue;
            if (addr < s.addr || addr - s.addr >= s.size) continue;
            auto b = section_bytes(s);
            uint64_t at = addr - s.addr;
            if (at >= b.size()) return {};
            return b.subspan(at, std::min<uint64_t>(len, b.size() - at));
        }
        return {};
    }

    const std::vector<ElfSymbol>& symbols() const override { return symbols_; }

    const ElfSymbol* symbol(std::string_view name) const override {
        auto it = by_name_.find(name);
        return it == by_name_.end() ? nullptr : &symbols_[it->second];
    }

    const ElfSymbol* symbol_at(uint64_t addr) const override {
        if (relocatable()) return nullptr;
        return lookup(0, addr);
    }

    const ElfSymbol* symbol_in_section(unsigned shndx, uint64_t offset) const override {
        if (relocatable()) return lookup(shndx, offset);
        const ElfSection* sec = nullptr;
        for (const auto& s : sections_)
            if (s.index == shndx) sec = &s;
        if (!sec) return nullptr;
        const ElfSymbol* sym = lookup(0, sec->addr + offset);
        return sym && sym->shndx == shndx ? sym : nullptr;
    }

    std::string build_id() const override {
        static const char* hex = "0123456789abcdef";
        auto from_notes = [&](Elf_Data* d) -> std::string {
            size_t off = 0, name_off = 0, desc_off = 0;
            GElf_Nhdr nh;
            while (d && off < d->d_size &&
                   (off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
                const char* base = static_cast<const char*>(d->d_buf);
                if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
                    std::memcmp(base + name_off, "GNU", 4) == 0) {
                    std::string out;
                    for (size_t i = 0; i < nh.n_descsz; ++i) {
                        auto c = static_cast<uint8_t>(base[desc_off + i]);
                        out += hex[c >> 4];
                        out += hex[c & 15];
                    }
                    return out;
                }
            }
            return {};
        };
        for (const auto& s : sections_) {
            if (s.type != SHT_NOTE) continue;
            Elf_Scn* scn = elf_getscn(file_.elf(), s.index);
            if (!scn) continue;
            if (auto id = from_notes(elf_getdata(scn, nullptr)); !id.empty()) return id;
        }
        // No section headers describing notes: try the PT_NOTE segments.
        size_t phnum = 0;
        if (elf_getphdrnum(file_.elf(), &phnum) != 0) return {};
        for (size_t i = 0; i < phnum; ++i) {
            GElf_Phdr ph;
            if (!gelf_getphdr(file_.elf(), static_cast<int>(i), &ph) || ph.p_type != PT_NOTE) continue;
            if (ph.p_offset > file_.file_size() || ph.p_filesz > file_.file_size() - ph.p_offset) continue;
            Elf_Data* d = elf_getdata_rawchunk(file_.elf(), ph.p_offset, ph.p_filesz, ELF_T_NHDR);
            if (auto id = from_notes(d); !id.empty()) return id;
        }
        return {};
    }

    std::optional<std::string> modinfo(std::string_view key) const override {
        const ElfSection* s = section(".modinfo");
        if (!s) return std::nullopt;
        auto b = section_bytes(*s);
        std::string_view all(reinterpret_cast<const char*>(b.data()), b.size());
        size_t pos = 0;
        while (pos < all.size()) {
            size_t end = all.find('\0', pos);
            if (end == std::string_view::npos) end = all.size();
            std::string_view entry = all.substr(pos, end - pos);
            if (entry.size() > key.size() && entry.compare(0, key.size(), key) == 0 &&
                entry[key.size()] == '=')
                return std::string(entry.substr(key.size() + 1));
            pos = end + 1;
        }
        return std::nullopt;
    }

private:
    void load_symbols() {
        unsigned idx = file_.find(".symtab");
        if (!idx || file_.sections()[idx].shdr.sh_type != SHT_SYMTAB) {
            idx = file_.find(".dynsym");
            if (idx && file_.sections()[idx].shdr.sh_type != SHT_DYNSYM) idx = 0;
        }
        if (!idx) return;
        const GElf_Shdr& sh = file_.sections()[idx].shdr;
        Elf_Scn* scn = elf_getscn(file_.elf(), idx);
        Elf_Data* d = scn ? elf_getdata(scn, nullptr) : nullptr;
        if (!d || sh.sh_entsize == 0) return;
        size_t n = d->d_size / sh.sh_entsize;
        symbols_.reserve(n ? n - 1 : 0);
        for (size_t i = 1; i < n; ++i) {  // entry 0 is the null symbol
            GElf_Sym sym;
            if (!gelf_getsym(d, static_cast<int>(i), &sym)) break;
            const char* name = elf_strptr(file_.elf(), sh.sh_link, sym.st_name);
            ElfSymbol s;
            s.name = name ? name : "";
            s.value = sym.st_value;
            s.size = sym.st_size;
            s.type = GELF_ST_TYPE(sym.st_info);
            s.bind = GELF_ST_BIND(sym.st_info);
            s.shndx = sym.st_shndx;
            symbols_.push_back(std::move(s));
        }
        by_name_.reserve(symbols_.size());
        for (uint32_t i = 0; i < symbols_.size(); ++i) {
            const ElfSymbol& s = symbols_[i];
            if (s.name.empty() || s.shndx == SHN_UNDEF) continue;
            by_name_.try_emplace(std::string_view(s.name), i);  // first one wins
        }
    }

    bool executable_section(uint16_t shndx) const {
        const auto& secs = file_.sections();
        return shndx < secs.size() && (secs[shndx].shdr.sh_flags & SHF_EXECINSTR);
    }

    // Lower is better among symbols starting at one address.
    static int rank(const ElfSymbol& s) {
        int r = 0;
        if (s.type == STT_NOTYPE) r += 4;
        if (s.bind == STB_WEAK) r += 1;
        else if (s.bind == STB_LOCAL) r += 2;
        return r;
    }

    uint64_t group_of(const ElfSymbol& s) const { return relocatable() ? s.shndx : 0; }

    void build_address_index() {
        for (uint32_t i = 0; i < symbols_.size(); ++i) {
            const ElfSymbol& s = symbols_[i];
            if (s.name.empty() || s.name[0] == '$') continue;  // ARM mapping symbols
            if (s.shndx == SHN_UNDEF || s.shndx >= SHN_LORESERVE) continue;  // ABS, COMMON ...
            bool keep = s.type == STT_FUNC || s.type == STT_OBJECT ||
                        (s.type == STT_NOTYPE && executable_section(s.shndx));
            if (keep) by_addr_.push_back(i);
        }
        std::stable_sort(by_addr_.begin(), by_addr_.end(), [&](uint32_t a, uint32_t b) {
            const ElfSymbol& x = symbols_[a];
            const ElfSymbol& y = symbols_[b];
            uint64_t gx = group_of(x), gy = group_of(y);
            if (gx != gy) return gx < gy;
            if (x.value != y.value) return x.value < y.value;
            return rank(x) < rank(y);
        });
        // For each entry, the sized symbol starting before it that reaches
        // furthest past its start (one level of nesting: a label inside a
        // function, an object inside a larger one).
        cover_.assign(by_addr_.size(), kNone);
        uint32_t open = kNone;
        uint64_t open_group = 0, open_end = 0;
        for (size_t i = 0; i < by_addr_.size(); ++i) {
            const ElfSymbol& s = symbols_[by_addr_[i]];
            uint64_t g = group_of(s);
            if (open != kNone && (g != open_group || open_end <= s.value)) open = kNone;
            if (open != kNone && symbols_[open].value < s.value) cover_[i] = open;
            uint64_t end = s.value + s.size;
            if (s.size > 0 && (open == kNone || end > open_end || g != open_group)) {
                open = by_addr_[i];
                open_group = g;
                open_end = end;
            }
        }
    }

    const ElfSymbol* lookup(uint64_t group, uint64_t addr) const {
        auto key_less = [&](uint64_t g, uint64_t v, uint32_t idx) {
            const ElfSymbol& s = symbols_[idx];
            uint64_t gs = group_of(s);
            return g != gs ? g < gs : v < s.value;
        };
        // First entry past (group, addr).
        auto it = std::upper_bound(by_addr_.begin(), by_addr_.end(), addr,
                                   [&](uint64_t a, uint32_t idx) { return key_less(group, a, idx); });
        if (it == by_addr_.begin()) return nullptr;
        const ElfSymbol& last = symbols_[*(it - 1)];
        if (group_of(last) != group) return nullptr;
        uint64_t start = last.value;
        // The run of entries starting at `start`, best ranked first.
        auto run = std::lower_bound(by_addr_.begin(), it, start, [&](uint32_t idx, uint64_t v) {
            const ElfSymbol& s = symbols_[idx];
            uint64_t gs = group_of(s);
            return gs != group ? gs < group : s.value < v;
        });
        const ElfSymbol* zero = nullptr;
        for (auto p = run; p != it; ++p) {
            const ElfSymbol& s = symbols_[*p];
            if (s.size > 0 && addr - s.value < s.size) return &s;
            if (s.size == 0 && !zero) zero = &s;
        }
        uint32_t c = cover_[run - by_addr_.begin()];
        if (c != kNone) {
            const ElfSymbol& s = symbols_[c];
            if (addr - s.value < s.size) return zero ? zero : &s;
        }
        return zero;
    }

    detail::ElfFile file_;
    std::vector<ElfSection> sections_;
    std::vector<ElfSymbol> symbols_;
    std::unordered_map<std::string_view, uint32_t> by_name_;
    std::vector<uint32_t> by_addr_;  // indices into symbols_, by (group, value, rank)
    std::vector<uint32_t> cover_;    // per by_addr_ entry: enclosing sized symbol or kNone
};

}  // namespace

std::unique_ptr<ElfImage> ElfImage::open(const std::string& path) {
    return std::make_unique<LibElfImage>(path);
}

}  // namespace kq
