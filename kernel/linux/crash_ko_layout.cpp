#include "kernel/linux/crash_ko_layout.h"

#include <elf.h>

#include <vector>

namespace kq {
namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return a > 1 ? (v + a - 1) / a * a : v; }

// The loader marks these SHF_RO_AFTER_INIT itself (the flag is not in the file).
bool ro_after_init(const std::string& name) { return name == ".data..ro_after_init" || name == "__jump_table"; }

}  // namespace

KoLayout ko_core_layout(const ElfImage& ko, uint64_t page_size) {
    KoLayout L;
    struct Sec {
        const ElfSection* s;
        bool exec, write, roai;
    };
    std::vector<Sec> secs;
    for (const auto& s : ko.sections()) {
        if (!(s.flags & SHF_ALLOC) || s.name.rfind(".init", 0) == 0) continue;
        if (s.name == ".modinfo" || s.name == "__versions") continue;  // the loader clears their SHF_ALLOC
        secs.push_back({&s, (s.flags & SHF_EXECINSTR) != 0, (s.flags & SHF_WRITE) != 0, ro_after_init(s.name)});
    }
    uint64_t size = 0;
    auto place = [&](auto wanted) {
        for (const auto& x : secs) {
            if (!wanted(x) || L.offset.count(x.s->index)) continue;
            size = align_up(size, x.s->align ? x.s->align : 1);
            L.offset[x.s->index] = size;
            size += x.s->size;
        }
        size = align_up(size, page_size);
    };
    // The masks of layout_sections(): a section goes to the first group it fits.
    place([](const Sec& x) { return x.exec; });
    L.text_size = size;
    place([](const Sec& x) { return !x.write && !x.roai; });
    place([](const Sec& x) { return x.roai; });
    place([](const Sec& x) { return x.write; });
    L.size = size;
    return L;
}

bool KoLayout::section_at(const ElfImage& ko, uint64_t off, unsigned& shndx, uint64_t& in_section) const {
    for (const auto& [idx, start] : offset) {
        for (const auto& s : ko.sections())
            if (s.index == idx && off >= start && off - start < s.size) {
                shndx = idx;
                in_section = off - start;
                return true;
            }
    }
    return false;
}

}  // namespace kq
