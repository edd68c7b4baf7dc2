// Type layouts from DWARF (libdwarf): struct member offsets, sizes,
// enumerators. Kernel structures are never laid out by hand.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace kq {

class Types {
public:
    // Opens the DWARF of an ELF file. Throws kq::Error if it has none (or the
    // file is missing, not ELF, truncated). Cheap: the file is mapped and no
    // DIE is read until the first look-up. For an ET_REL file (.ko) the
    // relocations of its .debug_* sections are applied.
    //
    // Look-ups index compile units lazily, only their top-level DIEs, until the
    // name asked for appears; a name that exists nowhere costs one walk of all
    // units (~1.3 s on a distribution vmlinux), after which every miss is
    // immediate. Results are cached. Thread-safe (one lock per instance).
    //
    // Type names: "task_struct", or "struct task_struct" / "union x" /
    // "enum y" to ask the tag namespace only; typedef and base type names
    // ("spinlock_t", "unsigned long" = GCC's "long unsigned int"); size()
    // of any name ending in '*' is the pointer size. Without a keyword the
    // first unit defining the name decides, a struct/union/enum tag winning
    // over a typedef of the same name there. Only complete definitions count
    // (DW_AT_declaration is skipped), and only file-scope types.
    static std::unique_ptr<Types> open(const std::string& path);
    virtual ~Types() = default;

    // The file the DWARF comes from.
    virtual const std::string& file() const;

    // Byte offset of a member path inside struct/union `type`, e.g.
    // offset("task_struct", "thread.sp"), offset("module", "mem[0].base").
    // Members of anonymous structs/unions are found as if they were direct
    // members. nullopt if the type or a member is unknown.
    // An index [i] multiplies by the element size ("a[1][2]" for arrays of
    // several dimensions; decimal or 0x hex); an index past a known bound is
    // nullopt, flexible arrays ([] or [0]) accept any. An empty path is 0.
    // A bitfield member gives the offset of the byte holding its first bit.
    virtual std::optional<uint64_t> offset(std::string_view type, std::string_view member_path) = 0;
    // Size in bytes of the member's type (of the rest of the array for a
    // partly indexed multi-dimensional one); 0 for a flexible array, nullopt
    // for a bitfield.
    virtual std::optional<uint64_t> member_size(std::string_view type, std::string_view member_path) = 0;
    // sizeof a struct, union, typedef or base type by name.
    virtual std::optional<uint64_t> size(std::string_view type) = 0;
    // Value of an enumerator (e.g. "MODULE_STATE_LIVE").
    virtual std::optional<int64_t> enumerator(std::string_view name) = 0;

    // How many compile units have been indexed so far (diagnostics, tests).
    virtual size_t units_indexed() const { return 0; }

    // Same, but throw kq::Error("<type>.<member> not found in DWARF of <file>").
    uint64_t offset_or_throw(std::string_view type, std::string_view member_path);
    uint64_t size_or_throw(std::string_view type);
};

}  // namespace kq
