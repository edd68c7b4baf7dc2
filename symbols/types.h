// Type layouts from DWARF (libdwarf): struct member offsets, sizes,
// enumerators. Kernel structures are never laid out by hand.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace kq {

class Types {
public:
    // Opens the DWARF of an ELF file. Throws kq::Error if it has none.
    static std::unique_ptr<Types> open(const std::string& path);
    virtual ~Types() = default;

    // Byte offset of a member path inside struct/union `type`, e.g.
    // offset("task_struct", "thread.sp"), offset("module", "mem[0].base").
    // Members of anonymous structs/unions are found as if they were direct
    // members. nullopt if the type or a member is unknown.
    virtual std::optional<uint64_t> offset(std::string_view type, std::string_view member_path) = 0;
    // Size in bytes of the member's type.
    virtual std::optional<uint64_t> member_size(std::string_view type, std::string_view member_path) = 0;
    // sizeof a struct, union, typedef or base type by name.
    virtual std::optional<uint64_t> size(std::string_view type) = 0;
    // Value of an enumerator (e.g. "MODULE_STATE_LIVE").
    virtual std::optional<int64_t> enumerator(std::string_view name) = 0;

    // Same, but throw kq::Error("<type>.<member> not found in DWARF of <file>").
    uint64_t offset_or_throw(std::string_view type, std::string_view member_path);
    uint64_t size_or_throw(std::string_view type);
};

}  // namespace kq
