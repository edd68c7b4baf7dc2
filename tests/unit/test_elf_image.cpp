// ElfImage on the fixture binaries: a relocatable object (like a .ko), a
// non-PIE executable, this test binary (PIE), and on bad input.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "fixtures/fixture_files.h"
#include "fixtures/kq_fixture_types.h"
#include "symbols/elf_image.h"
#include "vmcore/memory_source.h"

using kq::ElfImage;
using kq::fixture::TempFile;

extern "C" __attribute__((noinline, used)) int kq_elf_test_marker(int x) {
    return x * 7 + 1;
}

namespace {

#ifdef KQ_FIXTURE_OBJ
const std::string kObj = KQ_FIXTURE_OBJ;
const std::string kExe = KQ_FIXTURE_EXE;
const std::string kZObj = KQ_FIXTURE_ZOBJ;
#define REQUIRE_FIXTURES() (void)0
#else
const std::string kObj, kExe, kZObj;
#define REQUIRE_FIXTURES() GTEST_SKIP() << "fixtures not built (tests/unit/fixtures)"
#endif

bool is_hex(const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Opening must fail with a kq::Error of one line naming the file.
void expect_one_line_error(const std::string& path, const std::string& needle = {}) {
    try {
        auto img = ElfImage::open(path);
        ADD_FAILURE() << path << " opened, expected kq::Error";
    } catch (const kq::Error& e) {
        std::string msg = e.what();
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
        if (!needle.empty()) {
            EXPECT_NE(msg.find(needle), std::string::npos) << msg;
        }
    } catch (const std::exception& e) {
        ADD_FAILURE() << "not a kq::Error: " << e.what();
    }
}

}  // namespace

TEST(ElfImage, RelocatableObjectSectionsAndSymbols) {
    REQUIRE_FIXTURES();
    auto img = ElfImage::open(kObj);
    EXPECT_TRUE(img->relocatable());
    EXPECT_EQ(img->path(), kObj);

    const kq::ElfSection* text = img->section(".text");
    ASSERT_NE(text, nullptr);
    EXPECT_EQ(text->type, SHT_PROGBITS);
    EXPECT_TRUE(text->flags & SHF_EXECINSTR);
    EXPECT_EQ(text->addr, 0u);
    EXPECT_EQ(img->section(".no_such_section"), nullptr);
    for (const auto& s : img->sections()) {
        EXPECT_NE(s.index, 0u);
        EXPECT_EQ(img->section(s.name)->index <= s.index, true) << s.name;
    }

    const kq::ElfSymbol* f = img->symbol("kq_fixture_function");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->type, STT_FUNC);
    EXPECT_EQ(f->bind, STB_GLOBAL);
    EXPECT_EQ(f->shndx, text->index);
    EXPECT_GT(f->size, 0u);
    const kq::ElfSymbol* v = img->symbol("kq_fx_outer_var");
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(v->type, STT_OBJECT);
    EXPECT_EQ(v->size, sizeof(kq_fx_outer));
    EXPECT_EQ(img->symbol("kq_no_such_symbol"), nullptr);
    EXPECT_EQ(img->symbol(""), nullptr);

    // Section offsets, not addresses: only the per-section look-up applies.
    EXPECT_EQ(img->symbol_at(f->value + 1), nullptr);
    EXPECT_EQ(img->symbol_in_section(f->shndx, f->value), f);
    EXPECT_EQ(img->symbol_in_section(f->shndx, f->value + f->size - 1), f);
    EXPECT_EQ(img->symbol_in_section(v->shndx, v->value + 8), v);
    EXPECT_TRUE(img->bytes_at(0, 4).empty());
}

TEST(ElfImage, RelocatableObjectBuildIdAndModinfo) {
    REQUIRE_FIXTURES();
    auto img = ElfImage::open(kObj);
    EXPECT_EQ(img->build_id(), "deadbeef01234567");
    EXPECT_EQ(img->modinfo("name"), "kq_fixture");
    EXPECT_EQ(img->modinfo("license"), "GPL");
    EXPECT_EQ(img->modinfo("depends"), "");
    EXPECT_EQ(img->modinfo("vermagic"), "6.1.0-kq SMP mod_unload ");
    EXPECT_EQ(img->modinfo("nam"), std::nullopt);
    EXPECT_EQ(img->modinfo("missing"), std::nullopt);

    const kq::ElfSection* mi = img->section(".modinfo");
    ASSERT_NE(mi, nullptr);
    auto copy = img->section_data(*mi);
    auto view = img->section_bytes(*mi);
    ASSERT_EQ(copy.size(), mi->size);
    ASSERT_EQ(view.size(), mi->size);
    EXPECT_EQ(std::memcmp(copy.data(), view.data(), copy.size()), 0);
    EXPECT_EQ(std::memcmp(copy.data(), "license=GPL", 11), 0);

    const kq::ElfSection* bss = img->section(".bss");
    ASSERT_NE(bss, nullptr);
    EXPECT_EQ(bss->type, SHT_NOBITS);
    EXPECT_TRUE(img->section_data(*bss).empty());
}

TEST(ElfImage, CompressedSectionIsInflated) {
    REQUIRE_FIXTURES();
    auto plain = ElfImage::open(kObj);
    auto packed = ElfImage::open(kZObj);
    const kq::ElfSection* a = plain->section(".debug_abbrev");
    const kq::ElfSection* b = packed->section(".debug_abbrev");
    ASSERT_TRUE(a && b);
    EXPECT_FALSE(a->flags & SHF_COMPRESSED);
    EXPECT_TRUE(b->flags & SHF_COMPRESSED);
    auto x = plain->section_bytes(*a);
    auto y = packed->section_bytes(*b);
    ASSERT_EQ(x.size(), a->size);
    ASSERT_EQ(y.size(), x.size());
    EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size()), 0);
    EXPECT_EQ(packed->section_data(*b).size(), x.size());
}

TEST(ElfImage, ExecutableSymbolAt) {
    REQUIRE_FIXTURES();
    auto img = ElfImage::open(kExe);
    EXPECT_FALSE(img->relocatable());
    EXPECT_EQ(img->build_id().size(), 40u);
    EXPECT_TRUE(is_hex(img->build_id()));
    EXPECT_EQ(img->modinfo("name"), std::nullopt);

    const kq::ElfSymbol* f = img->symbol("kq_fixture_function");
    ASSERT_NE(f, nullptr);
    ASSERT_GT(f->size, 1u);
    EXPECT_NE(f->value, 0u);
    EXPECT_EQ(img->symbol_at(f->value), f);
    EXPECT_EQ(img->symbol_at(f->value + 1), f);
    EXPECT_EQ(img->symbol_at(f->value + f->size - 1), f);
    const kq::ElfSymbol* after = img->symbol_at(f->value + f->size);
    EXPECT_NE(after, f);
    EXPECT_EQ(img->symbol_at(0), nullptr);
    EXPECT_EQ(img->symbol_at(~uint64_t(0)), nullptr);

    const kq::ElfSymbol* late = img->symbol("kq_fixture_late_function");
    ASSERT_NE(late, nullptr);
    EXPECT_EQ(img->symbol_at(late->value + 2), late);

    // An object in .bss: inside it, the object.
    const kq::ElfSymbol* v = img->symbol("kq_fx_outer_var");
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(img->symbol_at(v->value + offsetof(kq_fx_outer, mem)), v);

    // Per-section look-up with an offset from the section's address.
    const kq::ElfSection* text = img->section(".text");
    ASSERT_NE(text, nullptr);
    EXPECT_EQ(img->symbol_in_section(text->index, f->value - text->addr + 3), f);

    // File contents at a virtual address: an initialised .data variable.
    const kq::ElfSymbol* st = img->symbol("kq_fx_state_var");
    ASSERT_NE(st, nullptr);
    auto b = img->bytes_at(st->value, sizeof(int));
    ASSERT_EQ(b.size(), sizeof(int));
    int value = 0;
    std::memcpy(&value, b.data(), sizeof value);
    EXPECT_EQ(value, KQ_FX_RUNNING);
    EXPECT_TRUE(img->bytes_at(v->value, 8).empty());  // .bss has no file contents
}

TEST(ElfImage, OwnBinaryIsPositionIndependent) {
    auto img = ElfImage::open("/proc/self/exe");
    EXPECT_FALSE(img->relocatable());
    const kq::ElfSymbol* m = img->symbol("kq_elf_test_marker");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->type, STT_FUNC);
    EXPECT_EQ(img->symbol_at(m->value + 1), m);
    EXPECT_TRUE(is_hex(img->build_id()));
    EXPECT_GT(img->symbols().size(), 100u);
    EXPECT_EQ(kq_elf_test_marker(1), 8);
}

TEST(ElfImage, DynsymWhenThereIsNoSymtab) {
    for (const char* p : {"/usr/bin/true", "/bin/true"}) {
        std::unique_ptr<ElfImage> img;
        try {
            img = ElfImage::open(p);
        } catch (const kq::Error&) {
            continue;
        }
        if (img->section(".symtab")) GTEST_SKIP() << p << " is not stripped";
        ASSERT_NE(img->section(".dynsym"), nullptr);
        EXPECT_FALSE(img->symbols().empty());
        return;
    }
    GTEST_SKIP() << "no stripped system binary found";
}

TEST(ElfImage, MissingNotElfEmptyDirectory) {
    expect_one_line_error("/nonexistent/kq/vmlinux", "No such file");
    TempFile text(std::string("this is not an ELF file, just some text\n"));
    expect_one_line_error(text.path(), "not an ELF file");
    TempFile empty(std::string{});
    expect_one_line_error(empty.path(), "empty");
    expect_one_line_error("/tmp", "directory");
}

TEST(ElfImage, TruncatedCopies) {
    REQUIRE_FIXTURES();
    for (const std::string& src : {kObj, kExe}) {
        auto bytes = kq::fixture::read_file(src);
        ASSERT_GT(bytes.size(), 1000u);
        for (size_t keep : {size_t(4), size_t(20), size_t(63), size_t(64), size_t(200), bytes.size() / 2,
                            bytes.size() - 1}) {
            SCOPED_TRACE(src + " cut to " + std::to_string(keep));
            TempFile cut(std::vector<uint8_t>(bytes.begin(), bytes.begin() + keep));
            expect_one_line_error(cut.path());
        }
    }
}

TEST(ElfImage, SectionPastEndOfFile) {
    REQUIRE_FIXTURES();
    auto bytes = kq::fixture::read_file(kObj);
    auto img = ElfImage::open(kObj);
    const kq::ElfSection* text = img->section(".text");
    ASSERT_NE(text, nullptr);
    Elf64_Ehdr eh;
    std::memcpy(&eh, bytes.data(), sizeof eh);
    ASSERT_EQ(eh.e_ident[EI_CLASS], ELFCLASS64);
    size_t at = eh.e_shoff + size_t(text->index) * eh.e_shentsize + offsetof(Elf64_Shdr, sh_offset);
    uint64_t bad = bytes.size() + 4096;
    std::memcpy(&bytes[at], &bad, sizeof bad);
    TempFile f(bytes);
    expect_one_line_error(f.path(), "truncated");
}

// Random damage to the headers: an error or a usable image, never a crash.
TEST(ElfImage, DamagedHeadersNeverCrash) {
    REQUIRE_FIXTURES();
    auto orig = kq::fixture::read_file(kObj);
    Elf64_Ehdr eh;
    std::memcpy(&eh, orig.data(), sizeof eh);
    std::mt19937 rng(12345);
    int opened = 0, refused = 0;
    for (int round = 0; round < 300; ++round) {
        auto bytes = orig;
        for (int k = 0; k < 4; ++k) {
            // Half in the ELF header, half in the section header table.
            size_t at = (rng() & 1) ? rng() % sizeof eh
                                    : eh.e_shoff + rng() % (size_t(eh.e_shnum) * eh.e_shentsize);
            if (at < bytes.size()) bytes[at] = static_cast<uint8_t>(rng());
        }
        TempFile f(bytes);
        try {
            auto img = ElfImage::open(f.path());
            ++opened;
            for (const auto& s : img->sections()) (void)img->section_data(s);
            for (const auto& s : img->symbols()) (void)img->symbol_in_section(s.shndx, s.value);
            (void)img->symbol("kq_fixture_function");
            (void)img->build_id();
            (void)img->modinfo("name");
        } catch (const kq::Error&) {
            ++refused;
        }
    }
    EXPECT_EQ(opened + refused, 300);
}
