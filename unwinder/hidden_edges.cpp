#include "unwinder/hidden_edges.h"

#include <algorithm>
#include <cstring>

#include "symbols/types.h"

namespace kq {

EdgeEntryLayout EdgeEntryLayout::jump_entry(Types& t) {
    EdgeEntryLayout l;
    l.size = static_cast<unsigned>(t.size_or_throw("jump_entry"));
    l.site = static_cast<unsigned>(t.offset_or_throw("jump_entry", "code"));
    l.target = static_cast<unsigned>(t.offset_or_throw("jump_entry", "target"));
    return l;
}

EdgeEntryLayout EdgeEntryLayout::exception_table_entry(Types& t) {
    EdgeEntryLayout l;
    l.size = static_cast<unsigned>(t.size_or_throw("exception_table_entry"));
    l.site = static_cast<unsigned>(t.offset_or_throw("exception_table_entry", "insn"));
    l.target = static_cast<unsigned>(t.offset_or_throw("exception_table_entry", "fixup"));
    return l;
}

HiddenEdges HiddenEdges::from_raw(std::span<const uint8_t> bytes, uint64_t table, const EdgeEntryLayout& l) {
    HiddenEdges j;
    if (!l.size || l.site + 4 > l.size || l.target + 4 > l.size) return j;
    size_t n = bytes.size() / l.size;
    j.sites_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        int32_t c, t;
        memcpy(&c, bytes.data() + i * l.size + l.site, 4);
        memcpy(&t, bytes.data() + i * l.size + l.target, 4);
        uint64_t entry = table + i * l.size;
        j.sites_.push_back({entry + l.site + static_cast<int64_t>(c), entry + l.target + static_cast<int64_t>(t)});
    }
    std::sort(j.sites_.begin(), j.sites_.end());
    j.sites_.erase(std::unique(j.sites_.begin(), j.sites_.end()), j.sites_.end());
    return j;
}

HiddenEdges HiddenEdges::from_image(const ElfImage& image, uint64_t slide, const EdgeEntryLayout& l,
                                    std::string_view start_symbol, std::string_view stop_symbol) {
    const ElfSymbol* a = image.symbol(start_symbol);
    const ElfSymbol* b = image.symbol(stop_symbol);
    if (!a || !b || b->value <= a->value) return {};
    auto bytes = image.bytes_at(a->value, b->value - a->value);
    return from_raw(bytes, a->value + slide, l);
}

HiddenEdges HiddenEdges::from_memory(MemorySource& mem, uint64_t table, uint64_t count, const EdgeEntryLayout& l) {
    if (!count || count > (1u << 20)) return {};
    std::vector<uint8_t> buf(count * l.size);
    if (!mem.read_exact(table, buf.data(), buf.size())) return {};
    return from_raw(buf, table, l);
}

void HiddenEdges::merge(const HiddenEdges& o) {
    sites_.insert(sites_.end(), o.sites_.begin(), o.sites_.end());
    std::sort(sites_.begin(), sites_.end());
    sites_.erase(std::unique(sites_.begin(), sites_.end()), sites_.end());
}

std::span<const std::pair<uint64_t, uint64_t>> HiddenEdges::at(uint64_t addr) const {
    auto lo = std::lower_bound(sites_.begin(), sites_.end(), std::pair<uint64_t, uint64_t>{addr, 0});
    auto hi = lo;
    while (hi != sites_.end() && hi->first == addr) ++hi;
    return std::span<const std::pair<uint64_t, uint64_t>>(lo, hi);
}

}  // namespace kq
