#include "kernel/linux/e820.h"

#include <algorithm>
#include <cstring>

#include "unwinder/frame.h"

namespace kq {

std::vector<std::pair<uint64_t, uint64_t>> e820_ram(MemorySource& mem, Types& types, uint64_t table) {
    const uint64_t entries = types.offset_or_throw("e820_table", "entries");
    const uint64_t entry_size = types.size_or_throw("e820_entry");
    const uint64_t addr_off = types.offset_or_throw("e820_entry", "addr");
    const uint64_t size_off = types.offset_or_throw("e820_entry", "size");
    const uint64_t type_off = types.offset_or_throw("e820_entry", "type");
    const auto ram = types.enumerator("E820_TYPE_RAM");
    if (!ram) throw Error("enumerator E820_TYPE_RAM not found in DWARF of " + types.file());
    const auto reserved_kern = types.enumerator("E820_TYPE_RESERVED_KERN");

    const auto nr = mem.read_as<uint32_t>(table + types.offset_or_throw("e820_table", "nr_entries"));
    if (!nr) throw Error("the kernel's e820 table at " + hex_text(table) + " is unreadable");
    // The array's bound from DWARF (E820_MAX_ENTRIES): a count past it is not a table.
    const uint64_t max = types.member_size("e820_table", "entries").value_or(0) / entry_size;
    if (*nr == 0 || (max && *nr > max))
        throw Error("the kernel's e820 table at " + hex_text(table) + " has " + std::to_string(*nr) + " entries");

    std::vector<uint8_t> bytes(*nr * entry_size);
    if (!mem.read_exact(table + entries, bytes.data(), bytes.size()))
        throw Error("the kernel's e820 table at " + hex_text(table) + " is unreadable");
    std::vector<std::pair<uint64_t, uint64_t>> out;
    for (uint32_t i = 0; i < *nr; ++i) {
        const uint8_t* e = bytes.data() + i * entry_size;
        uint64_t addr, size;
        uint32_t type;
        memcpy(&addr, e + addr_off, 8);
        memcpy(&size, e + size_off, 8);
        memcpy(&type, e + type_off, 4);
        if (size && addr + size > addr && (type == *ram || (reserved_kern && type == *reserved_kern)))
            out.emplace_back(addr, addr + size);
    }
    if (out.empty()) throw Error("the kernel's e820 table at " + hex_text(table) + " lists no RAM");
    std::sort(out.begin(), out.end());
    std::vector<std::pair<uint64_t, uint64_t>> merged{out.front()};
    for (const auto& r : out) {
        if (r.first <= merged.back().second) merged.back().second = std::max(merged.back().second, r.second);
        else merged.push_back(r);
    }
    return merged;
}

}  // namespace kq
