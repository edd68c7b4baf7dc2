// Shared by the unwinder tests: the real vmlinux ($KQ_VMLINUX), opened once,
// its ORC table, and a CodeMap over it (slide 0: addresses as linked).
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "symbols/elf_image.h"
#include "symbols/types.h"
#include "unwinder/code_map.h"
#include "unwinder/code_memory.h"
#include "unwinder/orc.h"

namespace kq::test {

inline std::string vmlinux_path() {
    const char* p = std::getenv("KQ_VMLINUX");
    if (!p || !*p || !std::filesystem::exists(p)) return {};
    return p;
}

// The layout of struct orc_entry in v6.1 (checked against DWARF with
// `ptype /o struct orc_entry`: sp_reg 4:0, bp_reg 4:4, type 5:0, end 5:2),
// passed as a parameter until Types reports bit positions.
inline OrcLayout v6_1_layout() { return OrcLayout::x86_64_end_bit(); }

struct Vmlinux {
    std::unique_ptr<ElfImage> image;
    OrcTable orc;
    std::unique_ptr<ImageCodeMap> map;
    std::unique_ptr<ImageMemory> code;

    // DWARF of the same file, opened on first use.
    Types& types() const {
        static std::unique_ptr<Types> t = Types::open(image->path());
        return *t;
    }

    const ElfSymbol& sym(std::string_view name) const {
        const ElfSymbol* s = image->symbol(name);
        if (!s) throw std::runtime_error("no symbol " + std::string(name));
        return *s;
    }
};

// nullptr when KQ_VMLINUX is unset or missing.
inline const Vmlinux* vmlinux() {
    static std::unique_ptr<Vmlinux> v = [] {
        std::unique_ptr<Vmlinux> r;
        std::string p = vmlinux_path();
        if (p.empty()) return r;
        r = std::make_unique<Vmlinux>();
        r->image = ElfImage::open(p);
        r->orc = OrcTable::from_image(*r->image, 0, v6_1_layout());
        r->map = std::make_unique<ImageCodeMap>(*r->image, 0);
        r->code = std::make_unique<ImageMemory>(*r->image, 0);
        return r;
    }();
    return v.get();
}

#define KQ_REQUIRE_VMLINUX(v)                                                   \
    const ::kq::test::Vmlinux* v = ::kq::test::vmlinux();                        \
    if (!v) GTEST_SKIP() << "set KQ_VMLINUX to a vmlinux with ORC to run this test"

}  // namespace kq::test
