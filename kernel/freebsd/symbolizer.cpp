#include "kernel/freebsd/symbolizer.h"

#include <elf.h>

#include <algorithm>
#include <cstdio>

namespace kq {
namespace {

std::string with_offset(const std::string& name, uint64_t off) {
    if (!off) return name;
    char b[32];
    snprintf(b, sizeof b, "+%#llx", static_cast<unsigned long long>(off));
    return name + b;
}

}  // namespace

FreebsdSymbolizer::~FreebsdSymbolizer() = default;

FreebsdSymbolizer::FreebsdSymbolizer(const ElfImage& kernel, const std::vector<Module>& modules) : kernel_(kernel) {
    for (const Module& m : modules) {
        const ElfImage* ko = nullptr;
        if (!m.ko_path.empty()) {
            try {
                kos_.push_back(ElfImage::open(m.ko_path));
                ko = kos_.back().get();
            } catch (const Error&) {
                // Named by section only.
            }
        }
        for (const auto& s : m.sections) {
            Section sec{s.addr, s.addr, s.name, 0, nullptr, m.name};
            for (const Range& r : m.ranges)
                if (r.start == s.addr) sec.end = std::max(sec.end, r.start + r.size);
            if (ko)
                if (const ElfSection* ks = ko->section(s.name); ks && (ks->flags & SHF_ALLOC)) {
                    sec.shndx = ks->index;
                    sec.ko = ko;
                    sec.end = std::max(sec.end, s.addr + ks->size);
                }
            if (sec.end > sec.start) sections_.push_back(std::move(sec));
        }
        if (m.sections.empty())
            for (const Range& r : m.ranges) sections_.push_back({r.start, r.start + r.size, r.what, 0, nullptr, m.name});
    }
    std::sort(sections_.begin(), sections_.end(), [](const Section& a, const Section& b) { return a.start < b.start; });
}

std::string FreebsdSymbolizer::name(uint64_t addr) const {
    auto it = std::upper_bound(sections_.begin(), sections_.end(), addr,
                               [](uint64_t a, const Section& s) { return a < s.start; });
    if (it != sections_.begin() && addr < std::prev(it)->end) {
        const Section& s = *std::prev(it);
        if (s.ko)
            if (const ElfSymbol* sym = s.ko->symbol_in_section(s.shndx, addr - s.start); sym && !sym->name.empty())
                return with_offset(sym->name, addr - s.start - sym->value) + " [" + s.module + "]";
        return "[" + s.module + "] " + with_offset(s.name, addr - s.start);
    }
    if (const ElfSymbol* sym = kernel_.symbol_at(addr); sym && !sym->name.empty())
        if (!sym->size || addr - sym->value < sym->size) return with_offset(sym->name, addr - sym->value);
    return {};
}

}  // namespace kq
