#include "unwinder/orc.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "symbols/types.h"

namespace kq {

const char* to_string(OrcReg r) {
    switch (r) {
        case OrcReg::undefined: return "undef";
        case OrcReg::prev_sp: return "prevsp";
        case OrcReg::dx: return "dx";
        case OrcReg::di: return "di";
        case OrcReg::bp: return "bp";
        case OrcReg::sp: return "sp";
        case OrcReg::r10: return "r10";
        case OrcReg::r13: return "r13";
        case OrcReg::bp_indirect: return "bp(ind)";
        case OrcReg::sp_indirect: return "sp(ind)";
    }
    return "?";
}

const char* to_string(OrcType t) {
    switch (t) {
        case OrcType::undefined: return "undefined";
        case OrcType::end_of_stack: return "end";
        case OrcType::call: return "call";
        case OrcType::regs: return "regs";
        case OrcType::regs_partial: return "regs_partial";
    }
    return "?";
}

std::string OrcEntry::describe() const {
    char b[96];
    snprintf(b, sizeof b, "sp:%s%+d bp:%s%+d type:%s%s", to_string(sp_reg), sp_offset, to_string(bp_reg),
             bp_offset, to_string(type), signal ? " signal" : "");
    return b;
}

OrcLayout OrcLayout::x86_64_end_bit() {
    OrcLayout l;
    l.sp_reg = {32, 4};
    l.bp_reg = {36, 4};
    l.type = {40, 2};
    l.end = {42, 1};
    return l;
}

OrcLayout OrcLayout::x86_64_signal_bit() {
    OrcLayout l;
    l.sp_reg = {32, 4};
    l.bp_reg = {36, 4};
    l.type = {40, 3};
    l.signal = {43, 1};
    return l;
}

OrcLayout OrcLayout::from_types(Types& types, const OrcLayout& bits) {
    OrcLayout l = bits;
    l.size = static_cast<unsigned>(types.size_or_throw("orc_entry"));
    l.sp_offset = static_cast<unsigned>(types.offset_or_throw("orc_entry", "sp_offset"));
    l.bp_offset = static_cast<unsigned>(types.offset_or_throw("orc_entry", "bp_offset"));
    // The presence of `end` or `signal` tells the two formats apart even
    // without bit positions: the bits given must be of the same format.
    bool has_end = types.offset("orc_entry", "end").has_value();
    bool has_signal = types.offset("orc_entry", "signal").has_value();
    // (A Types that cannot see bitfield members reports neither: accepted.)
    if ((has_end && l.end.width == 0) || (has_signal && l.signal.width == 0))
        throw Error(std::string("struct orc_entry in DWARF has ") + (has_end ? "an `end`" : "no `end`") +
                    " bit and " + (has_signal ? "a `signal`" : "no `signal`") +
                    " bit, unlike the bitfield layout given");
    return l;
}

namespace {

uint64_t bits_of(std::span<const uint8_t> raw, OrcLayout::Bits b) {
    uint64_t v = 0;
    for (unsigned i = 0; i < b.width; ++i) {
        unsigned bit = b.bit + i;
        if (bit / 8 >= raw.size()) return 0;
        v |= static_cast<uint64_t>((raw[bit / 8] >> (bit % 8)) & 1) << i;
    }
    return v;
}

}  // namespace

std::optional<OrcEntry> decode_orc_entry(const OrcLayout& l, std::span<const uint8_t> raw) {
    if (raw.size() < l.size || l.sp_offset + 2 > raw.size() || l.bp_offset + 2 > raw.size()) return std::nullopt;
    OrcEntry e;
    memcpy(&e.sp_offset, raw.data() + l.sp_offset, 2);
    memcpy(&e.bp_offset, raw.data() + l.bp_offset, 2);
    e.sp_reg = static_cast<OrcReg>(bits_of(raw, l.sp_reg));
    e.bp_reg = static_cast<OrcReg>(bits_of(raw, l.bp_reg));
    e.raw_type = static_cast<uint8_t>(bits_of(raw, l.type));
    if (!l.typed_end()) {
        bool end = bits_of(raw, l.end);
        // v6.1's unwind_next_frame: sp_reg UNDEFINED is the end when `end`
        // is set, and "no information" otherwise.
        if (e.sp_reg == OrcReg::undefined) {
            e.type = end ? OrcType::end_of_stack : OrcType::undefined;
        } else {
            switch (e.raw_type) {
                case 0: e.type = OrcType::call; break;
                case 1: e.type = OrcType::regs; break;
                case 2: e.type = OrcType::regs_partial; break;
                default: e.type = OrcType::undefined; break;
            }
        }
        e.signal = e.type == OrcType::regs || e.type == OrcType::regs_partial;
    } else {
        switch (e.raw_type) {
            case 1: e.type = OrcType::end_of_stack; break;
            case 2: e.type = OrcType::call; break;
            case 3: e.type = OrcType::regs; break;
            case 4: e.type = OrcType::regs_partial; break;
            default: e.type = OrcType::undefined; break;
        }
        e.signal = bits_of(raw, l.signal);
    }
    return e;
}

OrcTable OrcTable::from_raw(std::span<const uint8_t> ip_bytes, uint64_t ip_table,
                            std::span<const uint8_t> entry_bytes, const OrcLayout& layout,
                            std::vector<std::pair<uint64_t, uint64_t>> text, std::string name) {
    if (layout.size == 0) throw Error("ORC table of " + name + ": entry size 0");
    size_t n = ip_bytes.size() / 4;
    if (ip_bytes.size() % 4 || entry_bytes.size() % layout.size || entry_bytes.size() / layout.size != n)
        throw Error("ORC table of " + name + ": " + std::to_string(ip_bytes.size()) + " bytes of ips and " +
                    std::to_string(entry_bytes.size()) + " bytes of entries do not match");
    OrcTable t;
    t.name_ = std::move(name);
    t.layout_ = layout;
    std::vector<uint64_t> ips(n);
    std::vector<OrcEntry> entries(n);
    for (size_t i = 0; i < n; ++i) {
        int32_t rel;
        memcpy(&rel, ip_bytes.data() + 4 * i, 4);
        ips[i] = ip_table + 4 * i + static_cast<int64_t>(rel);
        entries[i] = *decode_orc_entry(layout, entry_bytes.subspan(i * layout.size, layout.size));
    }
    if (std::is_sorted(ips.begin(), ips.end())) {
        t.ips_ = std::move(ips);
        t.entries_ = std::move(entries);
    } else {
        // The kernel sorts module tables at load time and vmlinux's at build
        // time; an unsorted table came from elsewhere (or is damaged).
        t.was_sorted_ = false;
        std::vector<size_t> order(n);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ips[a] < ips[b]; });
        t.ips_.reserve(n);
        t.entries_.reserve(n);
        for (size_t i : order) {
            t.ips_.push_back(ips[i]);
            t.entries_.push_back(entries[i]);
        }
    }
    std::sort(text.begin(), text.end());
    t.text_ = std::move(text);
    return t;
}

OrcTable OrcTable::from_image(const ElfImage& image, uint64_t slide, const OrcLayout& layout) {
    const ElfSection* ip = image.section(".orc_unwind_ip");
    const ElfSection* ent = image.section(".orc_unwind");
    if (!ip || !ent) throw Error(image.path() + " has no ORC tables (.orc_unwind_ip, .orc_unwind)");
    auto ipb = image.section_bytes(*ip);
    auto eb = image.section_bytes(*ent);
    if (ipb.size() != ip->size || eb.size() != ent->size)
        throw Error(image.path() + ": ORC sections are not fully readable");
    std::vector<std::pair<uint64_t, uint64_t>> text;
    for (const auto& s : image.sections())
        if ((s.flags & SHF_EXECINSTR) && (s.flags & SHF_ALLOC) && s.addr && s.size)
            text.push_back({s.addr + slide, s.addr + slide + s.size});
    return from_raw(ipb, ip->addr + slide, eb, layout, std::move(text), "vmlinux");
}

OrcTable OrcTable::from_memory(MemorySource& mem, uint64_t ip_table, uint64_t entries, uint64_t count,
                               const OrcLayout& layout, std::vector<std::pair<uint64_t, uint64_t>> text,
                               std::string name) {
    // A module has at most a few hundred thousand entries; a larger count
    // is a damaged struct module.
    if (count > (1u << 22)) throw Error("ORC table of " + name + ": implausible count " + std::to_string(count));
    std::vector<uint8_t> ipb(count * 4), eb(count * layout.size);
    if (count && (!mem.read_exact(ip_table, ipb.data(), ipb.size()) || !mem.read_exact(entries, eb.data(), eb.size())))
        throw Error("ORC table of " + name + " is not readable in memory");
    return from_raw(ipb, ip_table, eb, layout, std::move(text), std::move(name));
}

bool OrcTable::covers(uint64_t ip) const {
    auto it = std::upper_bound(text_.begin(), text_.end(), ip,
                               [](uint64_t a, const std::pair<uint64_t, uint64_t>& r) { return a < r.first; });
    if (it == text_.begin()) return false;
    --it;
    return ip < it->second;
}

std::optional<OrcTable::Hit> OrcTable::find(uint64_t ip) const {
    if (ips_.empty() || !covers(ip)) return std::nullopt;
    auto it = std::upper_bound(ips_.begin(), ips_.end(), ip);
    if (it == ips_.begin()) return std::nullopt;
    size_t i = static_cast<size_t>(it - ips_.begin()) - 1;
    return Hit{entries_[i], ips_[i], i};
}

void OrcIndex::add(OrcTable t) { tables_.push_back(std::move(t)); }

std::optional<OrcTable::Hit> OrcIndex::find(uint64_t ip, const OrcTable** table) const {
    for (const auto& t : tables_)
        if (t.covers(ip)) {
            if (table) *table = &t;
            return t.find(ip);
        }
    return std::nullopt;
}

bool OrcIndex::covers(uint64_t ip) const {
    for (const auto& t : tables_)
        if (t.covers(ip)) return true;
    return false;
}

double orc_layout_score(const OrcTable& t, const ElfImage& image, uint64_t slide, size_t max_functions) {
    size_t seen = 0, good = 0;
    const auto& syms = image.symbols();
    // Spread the sample over the whole symbol table.
    size_t step = std::max<size_t>(1, syms.size() / (max_functions * 4));
    for (size_t i = 0; i < syms.size() && seen < max_functions; i += step) {
        const ElfSymbol& s = syms[i];
        // GCC's .cold parts continue their parent's frame: not entry points.
        if (s.type != STT_FUNC || s.size == 0 || s.name.find(".cold") != std::string::npos) continue;
        auto h = t.find(s.value + slide);
        if (!h || h->ip != s.value + slide) continue;
        ++seen;
        if (h->entry.sp_reg == OrcReg::sp && h->entry.sp_offset == 8 && h->entry.type == OrcType::call) ++good;
    }
    return seen ? static_cast<double>(good) / seen : 0.0;
}

}  // namespace kq
