// What the unwinder needs to know about code addresses: is it kernel text,
// which function holds it, is it a compiler thunk. Naming frames for the user
// is the caller's business; this interface is the small part the unwinder
// itself needs (function starts for prologue analysis and call-target checks).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "symbols/elf_image.h"

namespace kq {

struct FunctionInfo {
    uint64_t start = 0;   // runtime address
    uint64_t size = 0;    // 0 if unknown
    std::string name;     // symbol name, "" if none
    std::string module;   // "" for vmlinux
};

enum class ThunkKind : uint8_t {
    none,
    ret,       // __x86_return_thunk and friends: a jmp to it is a ret
    indirect,  // __x86_indirect_thunk_<reg>: a call to it is an indirect call
    ftrace,    // __fentry__ / ftrace trampolines
};

class CodeMap {
public:
    virtual ~CodeMap() = default;
    // addr lies in kernel or module executable memory.
    virtual bool is_text(uint64_t addr) const = 0;
    // The function containing addr (runtime address), if known.
    virtual std::optional<FunctionInfo> function_at(uint64_t addr) const = 0;
    // What kind of thunk starts at addr.
    virtual ThunkKind thunk_at(uint64_t addr) const;
};

// "function+0x1c [module]" for addr, the function looked up at `lookup`
// (pc-1 for a return address) and the offset taken from addr; the hex
// address when no function is known.
std::string describe_code(const CodeMap& map, uint64_t addr, uint64_t lookup);

// Classifies a symbol name as a thunk (by the kernel's naming).
ThunkKind thunk_kind_of(std::string_view name);

// CodeMap over vmlinux (with the KASLR slide) and any modules added to it.
class ImageCodeMap : public CodeMap {
public:
    ImageCodeMap(const ElfImage& vmlinux, uint64_t slide);

    // A module: its executable ranges, and optionally its .ko with the
    // runtime address of each of its sections (by name, as in sect_attrs).
    struct ModuleText {
        std::string name;
        std::vector<std::pair<uint64_t, uint64_t>> text;  // [start, start+size)
        const ElfImage* ko = nullptr;                      // may be null
        std::map<std::string, uint64_t> section_addrs;     // ".text" -> runtime addr
    };
    void add_module(ModuleText m);

    bool is_text(uint64_t addr) const override;
    std::optional<FunctionInfo> function_at(uint64_t addr) const override;
    ThunkKind thunk_at(uint64_t addr) const override;

private:
    struct TextRange {
        uint64_t start, end;
        int module;  // -1: vmlinux
    };
    struct KoSection {
        uint64_t start, end;
        unsigned shndx;
    };
    const TextRange* range_of(uint64_t addr) const;

    const ElfImage& vmlinux_;
    uint64_t slide_;
    std::vector<TextRange> ranges_;  // sorted by start
    std::vector<ModuleText> modules_;
    std::vector<std::vector<KoSection>> ko_sections_;  // per module, sorted
    mutable std::mutex mu_;
    mutable std::unordered_map<uint64_t, ThunkKind> thunks_;
};

}  // namespace kq
