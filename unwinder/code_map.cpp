#include "unwinder/code_map.h"

#include <elf.h>

#include <algorithm>

#include "unwinder/frame.h"

namespace kq {

std::string describe_code(const CodeMap& map, uint64_t addr, uint64_t lookup) {
    auto f = map.function_at(lookup);
    if (!f) return hex_text(addr);
    std::string s = (f->name.empty() ? hex_text(f->start) : f->name) + "+" + hex_text(addr - f->start);
    if (!f->module.empty()) s += " [" + f->module + "]";
    return s;
}

ThunkKind thunk_kind_of(std::string_view n) {
    auto starts = [&](std::string_view p) { return n.substr(0, p.size()) == p; };
    if (n == "__x86_return_thunk" || n == "zen_untrain_ret" || n == "__x86_return_skl" ||
        n == "srso_return_thunk" || n == "srso_alias_return_thunk" || n == "retbleed_return_thunk" ||
        n == "srso_untrain_ret" || n == "entry_untrain_ret")
        return ThunkKind::ret;
    if (starts("__x86_indirect_thunk_") || starts("__x86_indirect_call_thunk_") ||
        starts("__x86_indirect_jump_thunk_") || starts("__x86_indirect_alt_call_") ||
        starts("__x86_indirect_alt_jmp_"))
        return ThunkKind::indirect;
    if (n == "__fentry__" || starts("ftrace_") || n == "return_to_handler")
        return ThunkKind::ftrace;
    return ThunkKind::none;
}

ThunkKind CodeMap::thunk_at(uint64_t addr) const {
    auto f = function_at(addr);
    if (!f || f->start != addr) return ThunkKind::none;
    return thunk_kind_of(f->name);
}

ImageCodeMap::ImageCodeMap(const ElfImage& vmlinux, uint64_t slide) : vmlinux_(vmlinux), slide_(slide) {
    for (const auto& s : vmlinux.sections())
        if ((s.flags & SHF_EXECINSTR) && (s.flags & SHF_ALLOC) && s.addr && s.size)
            ranges_.push_back({s.addr + slide, s.addr + slide + s.size, -1});
    std::sort(ranges_.begin(), ranges_.end(), [](auto& a, auto& b) { return a.start < b.start; });
}

void ImageCodeMap::add_module(ModuleText m) {
    int idx = static_cast<int>(modules_.size());
    for (auto [s, e] : m.text)
        if (e > s) ranges_.push_back({s, e, idx});
    std::sort(ranges_.begin(), ranges_.end(), [](auto& a, auto& b) { return a.start < b.start; });
    std::vector<KoSection> secs;
    if (m.ko) {
        for (const auto& s : m.ko->sections()) {
            if (!(s.flags & SHF_ALLOC) || !s.size) continue;
            auto it = m.section_addrs.find(s.name);
            if (it == m.section_addrs.end()) continue;
            secs.push_back({it->second, it->second + s.size, s.index});
        }
        std::sort(secs.begin(), secs.end(), [](auto& a, auto& b) { return a.start < b.start; });
    }
    ko_sections_.push_back(std::move(secs));
    modules_.push_back(std::move(m));
}

const ImageCodeMap::TextRange* ImageCodeMap::range_of(uint64_t addr) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                               [](uint64_t a, const TextRange& r) { return a < r.start; });
    if (it == ranges_.begin()) return nullptr;
    --it;
    return addr < it->end ? &*it : nullptr;
}

bool ImageCodeMap::is_text(uint64_t addr) const { return range_of(addr) != nullptr; }

std::optional<FunctionInfo> ImageCodeMap::function_at(uint64_t addr) const {
    const TextRange* r = range_of(addr);
    if (!r) return std::nullopt;
    if (r->module < 0) {
        const ElfSymbol* s = vmlinux_.symbol_at(addr - slide_);
        if (!s) return std::nullopt;
        return FunctionInfo{s->value + slide_, s->size, s->name, ""};
    }
    const auto& m = modules_[r->module];
    const auto& secs = ko_sections_[r->module];
    auto it = std::upper_bound(secs.begin(), secs.end(), addr,
                               [](uint64_t a, const KoSection& s) { return a < s.start; });
    if (it == secs.begin()) return std::nullopt;
    --it;
    if (addr >= it->end) return std::nullopt;
    const ElfSymbol* s = m.ko->symbol_in_section(it->shndx, addr - it->start);
    if (!s) return std::nullopt;
    return FunctionInfo{it->start + s->value, s->size, s->name, m.name};
}

ThunkKind ImageCodeMap::thunk_at(uint64_t addr) const {
    {
        std::lock_guard lk(mu_);
        if (auto it = thunks_.find(addr); it != thunks_.end()) return it->second;
    }
    ThunkKind k = CodeMap::thunk_at(addr);
    std::lock_guard lk(mu_);
    thunks_.emplace(addr, k);
    return k;
}

}  // namespace kq
