// Types (DWARF layouts) on the fixture binaries, against offsetof/sizeof of
// the same header compiled here.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <random>
#include <thread>

#include "fixtures/fixture_files.h"
#include "fixtures/kq_fixture_types.h"
#include "symbols/types.h"
#include "vmcore/memory_source.h"

using kq::Types;
using kq::fixture::TempFile;

namespace {

#ifdef KQ_FIXTURE_OBJ
const std::string kObj = KQ_FIXTURE_OBJ;
const std::string kDwarf2 = KQ_FIXTURE_DWARF2_OBJ;
const std::string kExe = KQ_FIXTURE_EXE;
const std::string kZObj = KQ_FIXTURE_ZOBJ;
const std::string kZExe = KQ_FIXTURE_ZEXE;
#define REQUIRE_FIXTURES() (void)0
#else
const std::string kObj, kDwarf2, kExe, kZObj, kZExe;
#define REQUIRE_FIXTURES() GTEST_SKIP() << "fixtures not built (tests/unit/fixtures)"
#endif

std::optional<uint64_t> u(size_t v) { return uint64_t(v); }

void expect_open_error(const std::string& path, const std::string& needle) {
    try {
        auto t = Types::open(path);
        ADD_FAILURE() << path << " opened, expected kq::Error";
    } catch (const kq::Error& e) {
        std::string msg = e.what();
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
        EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
}

// The same assertions on each fixture: ET_REL with DWARF 5 (relocated
// .debug_info), ET_REL with strict DWARF 2 (offsets as expressions), a
// linked executable of several units, and both with compressed DWARF.
class FixtureTypes : public ::testing::TestWithParam<const std::string*> {
protected:
    void SetUp() override {
        REQUIRE_FIXTURES();
        types_ = Types::open(*GetParam());
    }
    std::unique_ptr<Types> types_;
};

}  // namespace

TEST_P(FixtureTypes, MemberOffsets) {
    Types& t = *types_;
    using O = kq_fx_outer;
    EXPECT_EQ(t.offset("kq_fx_outer", "id"), u(offsetof(O, id)));
    EXPECT_EQ(t.offset("kq_fx_outer", "thread"), u(offsetof(O, thread)));
    EXPECT_EQ(t.offset("kq_fx_outer", "thread.sp"), u(offsetof(O, thread.sp)));
    EXPECT_EQ(t.offset("kq_fx_outer", "thread.pair"), u(offsetof(O, thread.pair)));
    EXPECT_EQ(t.offset("kq_fx_outer", "thread.pair[1]"), u(offsetof(O, thread.pair[1])));
    // Through the anonymous union, the anonymous struct inside it, and the
    // anonymous struct.
    EXPECT_EQ(t.offset("kq_fx_outer", "as_long"), u(offsetof(O, as_long)));
    EXPECT_EQ(t.offset("kq_fx_outer", "lo"), u(offsetof(O, lo)));
    EXPECT_EQ(t.offset("kq_fx_outer", "hi"), u(offsetof(O, hi)));
    EXPECT_EQ(t.offset("kq_fx_outer", "flag"), u(offsetof(O, flag)));
    EXPECT_EQ(t.offset("kq_fx_outer", "nested"), u(offsetof(O, nested)));
    EXPECT_EQ(t.offset("kq_fx_outer", "nested.sp"), u(offsetof(O, nested.sp)));
    EXPECT_EQ(t.offset("kq_fx_outer", "nested.pair[1]"), u(offsetof(O, nested.pair[1])));
    // Arrays: an index multiplies by the element size.
    EXPECT_EQ(t.offset("kq_fx_outer", "mem"), u(offsetof(O, mem)));
    EXPECT_EQ(t.offset("kq_fx_outer", "mem[0].base"), u(offsetof(O, mem[0].base)));
    EXPECT_EQ(t.offset("kq_fx_outer", "mem[2].size"), u(offsetof(O, mem[2].size)));
    EXPECT_EQ(t.offset("kq_fx_outer", "mem[3]"), u(offsetof(O, mem[3])));
    EXPECT_EQ(t.offset("kq_fx_outer", "mem[0x3]"), u(offsetof(O, mem[3])));
    EXPECT_EQ(t.offset("kq_fx_outer", "grid"), u(offsetof(O, grid)));
    EXPECT_EQ(t.offset("kq_fx_outer", "grid[1]"), u(offsetof(O, grid[1])));
    EXPECT_EQ(t.offset("kq_fx_outer", "grid[2][4]"), u(offsetof(O, grid[2][4])));
    EXPECT_EQ(t.offset("kq_fx_outer", "state"), u(offsetof(O, state)));
    EXPECT_EQ(t.offset("kq_fx_outer", "cv"), u(offsetof(O, cv)));
    EXPECT_EQ(t.offset("kq_fx_outer", "next"), u(offsetof(O, next)));
    EXPECT_EQ(t.offset("kq_fx_outer", "opaque"), u(offsetof(O, opaque)));
    EXPECT_EQ(t.offset("kq_fx_outer", "fn"), u(offsetof(O, fn)));
    EXPECT_EQ(t.offset("kq_fx_outer", "tail"), u(offsetof(O, tail)));
    EXPECT_EQ(t.offset("kq_fx_outer", "tail[5]"), u(offsetof(O, tail) + 5));  // flexible: any index
    EXPECT_EQ(t.offset("kq_fx_outer", ""), u(0));
    // Bitfields: the byte holding their first bit (right after cv here).
    EXPECT_EQ(t.offset("kq_fx_outer", "bits_a"), u(offsetof(O, cv) + sizeof(kq_fx_ulong)));
    EXPECT_EQ(t.offset("kq_fx_outer", "bits_b"), u(offsetof(O, cv) + sizeof(kq_fx_ulong)));

    // The type named through its typedefs, or with its keyword.
    EXPECT_EQ(t.offset("kq_fx_outer_t", "hi"), u(offsetof(O, hi)));
    EXPECT_EQ(t.offset("kq_fx_alias", "mem[1].size"), u(offsetof(O, mem[1].size)));
    EXPECT_EQ(t.offset("struct kq_fx_outer", "grid[1][1]"), u(offsetof(O, grid[1][1])));
    EXPECT_EQ(t.offset("union kq_fx_u", "r.size"), u(offsetof(kq_fx_u, r.size)));
    EXPECT_EQ(t.offset("kq_fx_u", "b[7]"), u(offsetof(kq_fx_u, b[7])));
    EXPECT_EQ(t.offset("kq_fx_inner_t", "pair[1]"), u(offsetof(kq_fx_inner, pair[1])));
    EXPECT_EQ(t.offset("kq_fx_dual", "b"), u(offsetof(kq_fx_dual, b)));
}

TEST_P(FixtureTypes, MemberSizes) {
    Types& t = *types_;
    using O = kq_fx_outer;
    EXPECT_EQ(t.member_size("kq_fx_outer", "id"), u(sizeof(int)));
    EXPECT_EQ(t.member_size("kq_fx_outer", "thread"), u(sizeof(kq_fx_inner)));
    EXPECT_EQ(t.member_size("kq_fx_outer", "thread.pair"), u(sizeof(((O*)nullptr)->thread.pair)));
    EXPECT_EQ(t.member_size("kq_fx_outer", "mem"), u(sizeof(((O*)nullptr)->mem)));
    EXPECT_EQ(t.member_size("kq_fx_outer", "mem[1]"), u(sizeof(kq_fx_range)));
    EXPECT_EQ(t.member_size("kq_fx_outer", "mem[1].base"), u(sizeof(void*)));
    EXPECT_EQ(t.member_size("kq_fx_outer", "grid"), u(sizeof(((O*)nullptr)->grid)));
    EXPECT_EQ(t.member_size("kq_fx_outer", "grid[1]"), u(sizeof(((O*)nullptr)->grid[1])));
    EXPECT_EQ(t.member_size("kq_fx_outer", "grid[1][2]"), u(sizeof(int)));
    EXPECT_EQ(t.member_size("kq_fx_outer", "state"), u(sizeof(kq_fx_state)));
    EXPECT_EQ(t.member_size("kq_fx_outer", "cv"), u(sizeof(kq_fx_ulong)));  // through const volatile
    EXPECT_EQ(t.member_size("kq_fx_outer", "next"), u(sizeof(void*)));
    EXPECT_EQ(t.member_size("kq_fx_outer", "fn"), u(sizeof(void (*)(int))));
    EXPECT_EQ(t.member_size("kq_fx_outer", "hi"), u(sizeof(int)));
    EXPECT_EQ(t.member_size("kq_fx_outer", "nested"), u(sizeof(kq_fx_inner_t)));
    EXPECT_EQ(t.member_size("kq_fx_outer", "tail"), u(0));
    EXPECT_EQ(t.member_size("kq_fx_outer", "bits_a"), std::nullopt);
    EXPECT_EQ(t.member_size("kq_fx_outer", ""), u(sizeof(O)));
}

TEST_P(FixtureTypes, Sizes) {
    Types& t = *types_;
    EXPECT_EQ(t.size("kq_fx_outer"), u(sizeof(kq_fx_outer)));
    EXPECT_EQ(t.size("struct kq_fx_outer"), u(sizeof(kq_fx_outer)));
    EXPECT_EQ(t.size("kq_fx_outer_t"), u(sizeof(kq_fx_outer_t)));
    EXPECT_EQ(t.size("kq_fx_alias"), u(sizeof(kq_fx_alias)));
    EXPECT_EQ(t.size("kq_fx_inner_t"), u(sizeof(kq_fx_inner_t)));
    EXPECT_EQ(t.size("kq_fx_u"), u(sizeof(kq_fx_u)));
    EXPECT_EQ(t.size("union kq_fx_u"), u(sizeof(kq_fx_u)));
    EXPECT_EQ(t.size("kq_fx_range"), u(sizeof(kq_fx_range)));
    EXPECT_EQ(t.size("kq_fx_dual"), u(sizeof(kq_fx_dual)));
    EXPECT_EQ(t.size("struct kq_fx_dual"), u(sizeof(kq_fx_dual)));
    EXPECT_EQ(t.size("kq_fx_state"), u(sizeof(kq_fx_state)));
    EXPECT_EQ(t.size("enum kq_fx_state"), u(sizeof(kq_fx_state)));
    EXPECT_EQ(t.size("kq_fx_ulong"), u(sizeof(kq_fx_ulong)));
    EXPECT_EQ(t.size("unsigned long"), u(sizeof(unsigned long)));
    EXPECT_EQ(t.size("long unsigned int"), u(sizeof(unsigned long)));
    EXPECT_EQ(t.size("int"), u(sizeof(int)));
    EXPECT_EQ(t.size("char"), u(1));
    EXPECT_EQ(t.size("void *"), u(sizeof(void*)));
    EXPECT_EQ(t.size("struct kq_fx_outer *"), u(sizeof(void*)));
    // Declared, never defined; never mentioned.
    EXPECT_EQ(t.size("kq_fx_opaque"), std::nullopt);
    EXPECT_EQ(t.size("kq_no_such_type"), std::nullopt);
    EXPECT_EQ(t.size("struct kq_fx_ulong"), std::nullopt);  // a typedef, not a tag
    EXPECT_EQ(t.size(""), std::nullopt);
}

TEST_P(FixtureTypes, Enumerators) {
    Types& t = *types_;
    EXPECT_EQ(t.enumerator("KQ_FX_IDLE"), std::optional<int64_t>(KQ_FX_IDLE));
    EXPECT_EQ(t.enumerator("KQ_FX_RUNNING"), std::optional<int64_t>(KQ_FX_RUNNING));
    EXPECT_EQ(t.enumerator("KQ_FX_NEGATIVE"), std::optional<int64_t>(-5));
    EXPECT_EQ(t.enumerator("KQ_FX_BIG"), std::optional<int64_t>(0x7fffffff));
    EXPECT_EQ(t.enumerator("KQ_FX_ALL"), std::optional<int64_t>(0xffffffffLL));
    EXPECT_EQ(t.enumerator("KQ_FX_ANON_A"), std::optional<int64_t>(7));
    EXPECT_EQ(t.enumerator("KQ_FX_ANON_B"), std::optional<int64_t>(8));
    EXPECT_EQ(t.enumerator("KQ_FX_NOPE"), std::nullopt);
}

TEST_P(FixtureTypes, BadPaths) {
    Types& t = *types_;
    EXPECT_EQ(t.offset("kq_fx_outer", "nope"), std::nullopt);
    EXPECT_EQ(t.offset("kq_fx_outer", "thread.nope"), std::nullopt);
    EXPECT_EQ(t.offset("kq_fx_outer", "mem[4]"), std::nullopt);  // past the bound
    EXPECT_EQ(t.offset("kq_fx_outer", "grid[3][0]"), std::nullopt);
    EXPECT_EQ(t.offset("kq_fx_outer", "grid[0][5]"), std::nullopt);
    EXPECT_EQ(t.offset("kq_fx_outer", "grid[0][0][0]"), std::nullopt);
    EXPECT_EQ(t.offset("kq_fx_outer", "mem[x]"), std::nullopt);
    EXPECT_EQ(t.offset("kq_fx_outer", "mem[1"), std::nullopt);
    EXPECT_EQ(t.offset("kq_fx_outer", "mem[]"), std::nullopt);
    EXPECT_EQ(t.offset("kq_fx_outer", "mem.base"), std::nullopt);  // member of an array
    EXPECT_EQ(t.offset("kq_fx_outer", "thread."), std::nullopt);
    EXPECT_EQ(t.offset("kq_fx_outer", ".thread"), std::nullopt);
    EXPECT_EQ(t.offset("kq_fx_outer", "id.x"), std::nullopt);      // member of an int
    EXPECT_EQ(t.offset("kq_fx_outer", "thread[0]"), std::nullopt);  // index of a struct
    EXPECT_EQ(t.offset("kq_fx_outer", "next.id"), std::nullopt);    // through a pointer
    EXPECT_EQ(t.offset("kq_fx_ulong", "x"), std::nullopt);
    EXPECT_EQ(t.offset("kq_fx_opaque", "x"), std::nullopt);
    EXPECT_EQ(t.offset("kq_no_such_type", "x"), std::nullopt);
    EXPECT_EQ(t.member_size("kq_fx_outer", "nope"), std::nullopt);

    EXPECT_EQ(t.offset_or_throw("kq_fx_outer", "hi"), offsetof(kq_fx_outer, hi));
    EXPECT_EQ(t.size_or_throw("kq_fx_outer"), sizeof(kq_fx_outer));
    try {
        t.offset_or_throw("kq_fx_outer", "thread.nope");
        ADD_FAILURE() << "no throw";
    } catch (const kq::Error& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find("kq_fx_outer.thread.nope not found in DWARF of " + *GetParam()), std::string::npos)
            << msg;
    }
    EXPECT_THROW(t.size_or_throw("kq_no_such_type"), kq::Error);
    EXPECT_EQ(t.file(), *GetParam());
}

std::string fixture_name(const ::testing::TestParamInfo<const std::string*>& info) {
    static const char* const names[] = {"RelocatableDwarf5", "RelocatableDwarf2", "Executable",
                                        "CompressedRelocatable", "CompressedExecutable"};
    return names[info.index];
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureTypes, ::testing::Values(&kObj, &kDwarf2, &kExe, &kZObj, &kZExe),
                         fixture_name);

// Units are indexed lazily, and a declaration in an early unit does not hide
// the definition in a later one.
TEST(Types, LazyUnitsAndLateDefinition) {
    REQUIRE_FIXTURES();
    auto t = Types::open(kExe);
    EXPECT_EQ(t->units_indexed(), 0u);
    EXPECT_EQ(t->offset("kq_fx_outer", "hi"), u(offsetof(kq_fx_outer, hi)));
    size_t after_first = t->units_indexed();
    EXPECT_GE(after_first, 1u);

    // struct kq_fx_late { long x; int y; }: defined in the second unit only.
    EXPECT_EQ(t->offset("kq_fx_late", "y"), u(sizeof(long)));
    EXPECT_EQ(t->size("kq_fx_late"), u(2 * sizeof(long)));
    EXPECT_GT(t->units_indexed(), after_first);

    EXPECT_EQ(t->size("kq_no_such_type"), std::nullopt);  // walks everything left
    size_t all = t->units_indexed();
    EXPECT_GE(all, 3u);
    EXPECT_EQ(t->size("kq_no_such_type_either"), std::nullopt);
    EXPECT_EQ(t->units_indexed(), all);
}

TEST(Types, ConcurrentLookups) {
    REQUIRE_FIXTURES();
    auto t = Types::open(kExe);
    std::vector<std::thread> threads;
    std::atomic<int> bad{0};
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&, i] {
            for (int k = 0; k < 50; ++k) {
                if (t->offset("kq_fx_outer", "mem[2].size") != u(offsetof(kq_fx_outer, mem[2].size))) ++bad;
                if (t->size(i % 2 ? "kq_fx_late" : "kq_fx_u") != u(i % 2 ? 2 * sizeof(long) : sizeof(kq_fx_u)))
                    ++bad;
                if (t->enumerator("KQ_FX_ANON_B") != std::optional<int64_t>(8)) ++bad;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad.load(), 0);
}

TEST(Types, BadInput) {
    expect_open_error("/nonexistent/kq/vmlinux", "No such file");
    TempFile text(std::string("not ELF at all\n"));
    expect_open_error(text.path(), "not an ELF file");
    TempFile empty(std::string{});
    expect_open_error(empty.path(), "empty");
    REQUIRE_FIXTURES();
    auto bytes = kq::fixture::read_file(kObj);
    TempFile cut(std::vector<uint8_t>(bytes.begin(), bytes.begin() + bytes.size() / 2));
    expect_open_error(cut.path(), "truncated");

    // An ELF file without .debug_info (renamed in the section name table).
    auto nodebug = bytes;
    ASSERT_TRUE(kq::fixture::patch_bytes(nodebug, ".debug_info", ".xebug_info"));
    TempFile nd(nodebug);
    expect_open_error(nd.path(), "no DWARF");
}

// Random damage inside .debug_info / .debug_abbrev: look-ups may fail but
// must not crash or hang.
TEST(Types, DamagedDwarfNeverCrashes) {
    REQUIRE_FIXTURES();
    auto orig = kq::fixture::read_file(kExe);
    // Find the DWARF sections through ElfImage-free parsing: the section
    // headers of a 64-bit little-endian file.
    struct Range {
        size_t off, size;
    };
    std::vector<Range> dwarf;
    {
        uint64_t shoff;
        uint16_t shentsize, shnum, shstrndx;
        std::memcpy(&shoff, &orig[0x28], 8);
        std::memcpy(&shentsize, &orig[0x3a], 2);
        std::memcpy(&shnum, &orig[0x3c], 2);
        std::memcpy(&shstrndx, &orig[0x3e], 2);
        auto sh = [&](unsigned i, size_t field, size_t n) {
            uint64_t v = 0;
            std::memcpy(&v, &orig[shoff + i * shentsize + field], n);
            return v;
        };
        uint64_t strtab = sh(shstrndx, 24, 8);
        for (unsigned i = 1; i < shnum; ++i) {
            std::string name(reinterpret_cast<const char*>(&orig[strtab + sh(i, 0, 4)]));
            if (name == ".debug_info" || name == ".debug_abbrev") dwarf.push_back({sh(i, 24, 8), sh(i, 32, 8)});
        }
    }
    ASSERT_EQ(dwarf.size(), 2u);
    std::mt19937 rng(777);
    int rounds = 0;
    for (int round = 0; round < 300; ++round) {
        auto bytes = orig;
        for (int k = 0; k < 3; ++k) {
            const Range& r = dwarf[rng() % 2];
            bytes[r.off + rng() % r.size] = static_cast<uint8_t>(rng());
        }
        TempFile f(bytes);
        try {
            auto t = Types::open(f.path());
            (void)t->offset("kq_fx_outer", "mem[2].size");
            (void)t->size("kq_fx_late");
            (void)t->enumerator("KQ_FX_ANON_B");
            (void)t->size("kq_no_such_type");
        } catch (const kq::Error&) {
        }
        ++rounds;
    }
    EXPECT_EQ(rounds, 300);
}
