// ElfImage and Types on a real kernel: a vmlinux with DWARF ($KQ_VMLINUX)
// and a module's .ko with DWARF ($KQ_TEST_KO). Skipped when unset. Only
// relations that hold on any x86-64 Linux are asserted; the values seen are
// printed (checked by hand against gdb on 6.1.0-56-amd64: task_struct
// thread.sp 0x1518, module list 0x8, inactive_task_frame ret_addr 0x30 of 56
// bytes, rq curr 0x960).
#include <elf.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "fixtures/fixture_files.h"
#include "symbols/elf_image.h"
#include "symbols/types.h"
#include "vmcore/memory_source.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

std::string vmlinux() { return kq::fixture::env_file("KQ_VMLINUX"); }
std::string test_ko() { return kq::fixture::env_file("KQ_TEST_KO"); }

#define REQUIRE_FILE(path, var)                                                 \
    do {                                                                        \
        if ((path).empty()) GTEST_SKIP() << "set " var " to run this test";     \
    } while (0)

}  // namespace

TEST(KernelElf, VmlinuxSymbols) {
    std::string path = vmlinux();
    REQUIRE_FILE(path, "KQ_VMLINUX");
    auto t0 = Clock::now();
    auto img = kq::ElfImage::open(path);
    std::printf("ElfImage::open(vmlinux): %.1f ms, %zu symbols\n", ms_since(t0), img->symbols().size());
    EXPECT_FALSE(img->relocatable());
    EXPECT_EQ(img->build_id().size(), 40u);

    const kq::ElfSymbol* banner = img->symbol("linux_banner");
    ASSERT_NE(banner, nullptr);
    auto text = img->bytes_at(banner->value, 14);
    ASSERT_EQ(text.size(), 14u);
    EXPECT_EQ(std::memcmp(text.data(), "Linux version ", 14), 0);
    EXPECT_EQ(img->symbol_at(banner->value + 3), banner);

    const kq::ElfSymbol* schedule = img->symbol("schedule");
    ASSERT_NE(schedule, nullptr);
    EXPECT_EQ(schedule->type, STT_FUNC);
    ASSERT_GT(schedule->size, 5u);
    const kq::ElfSymbol* at = img->symbol_at(schedule->value + 5);
    ASSERT_NE(at, nullptr);
    EXPECT_EQ(at->name, "schedule");
    EXPECT_EQ(img->symbol_at(schedule->value)->name, "schedule");
    EXPECT_NE(img->symbol_at(schedule->value + schedule->size), schedule);

    // An assembly entry point (STT_NOTYPE in .text) is found too.
    if (const kq::ElfSymbol* rff = img->symbol("ret_from_fork")) {
        const kq::ElfSymbol* s = img->symbol_at(rff->value + 1);
        ASSERT_NE(s, nullptr);
        EXPECT_EQ(s->value, rff->value);
    }
    EXPECT_NE(img->symbol("init_task"), nullptr);
}

TEST(KernelTypes, VmlinuxLayouts) {
    std::string path = vmlinux();
    REQUIRE_FILE(path, "KQ_VMLINUX");
    auto t0 = Clock::now();
    auto types = kq::Types::open(path);
    double open_ms = ms_since(t0);

    auto t1 = Clock::now();
    auto sp = types->offset("task_struct", "thread.sp");
    double sp_ms = ms_since(t1);
    size_t units_after_task = types->units_indexed();
    t1 = Clock::now();
    auto list = types->offset("module", "list");
    auto ret = types->offset("inactive_task_frame", "ret_addr");
    double ret_ms = ms_since(t1);
    t1 = Clock::now();
    auto curr = types->offset("rq", "curr");
    double rq_ms = ms_since(t1);
    t1 = Clock::now();
    auto live = types->enumerator("MODULE_STATE_LIVE");
    double live_ms = ms_since(t1);
    std::printf("Types on vmlinux: open %.1f ms; task_struct.thread.sp %.1f ms; module.list + "
                "inactive_task_frame.ret_addr %.1f ms; rq.curr %.1f ms; MODULE_STATE_LIVE %.1f ms; "
                "total %.1f ms, %zu units indexed\n",
                open_ms, sp_ms, ret_ms, rq_ms, live_ms, ms_since(t0), types->units_indexed());

    ASSERT_TRUE(sp && list && ret && curr && live);
    std::printf("thread.sp=%#llx list=%#llx ret_addr=%#llx rq.curr=%#llx\n", (unsigned long long)*sp,
                (unsigned long long)*list, (unsigned long long)*ret, (unsigned long long)*curr);
    EXPECT_LT(units_after_task, 100u);  // lazily: task_struct is in the first units

    // Relations that must hold.
    EXPECT_EQ(types->size("inactive_task_frame"), *ret + 8);  // ret_addr is its last word
    EXPECT_EQ(*live, 0);
    EXPECT_EQ(types->enumerator("MODULE_STATE_COMING"), 1);
    EXPECT_EQ(types->enumerator("MODULE_STATE_GOING"), 2);
    EXPECT_EQ(types->enumerator("MODULE_STATE_UNFORMED"), 3);
    EXPECT_EQ(types->offset("list_head", "next"), 0u);
    EXPECT_EQ(types->offset("list_head", "prev"), 8u);
    EXPECT_EQ(types->size("list_head"), 16u);
    EXPECT_EQ(types->member_size("task_struct", "comm"), 16u);  // TASK_COMM_LEN
    EXPECT_EQ(types->member_size("task_struct", "thread.sp"), 8u);
    EXPECT_EQ(types->member_size("rq", "curr"), 8u);
    EXPECT_EQ(types->offset("module", "list"), *list);
    EXPECT_LT(*sp, *types->size("task_struct"));
    EXPECT_LT(*curr, *types->size("rq"));
    auto name = types->offset("module", "name");
    ASSERT_TRUE(name);
    EXPECT_EQ(types->offset("module", "name[5]"), *name + 5);
    EXPECT_EQ(types->size("spinlock_t"), 4u);
    EXPECT_EQ(types->size("unsigned long"), 8u);
}

TEST(KernelTypes, ModuleKo) {
    std::string path = test_ko();
    REQUIRE_FILE(path, "KQ_TEST_KO");
    auto img = kq::ElfImage::open(path);
    EXPECT_TRUE(img->relocatable());
    ASSERT_TRUE(img->modinfo("name"));
    EXPECT_FALSE(img->modinfo("name")->empty());
    EXPECT_TRUE(img->modinfo("vermagic"));
    EXPECT_EQ(img->build_id().size(), 40u);
    const kq::ElfSymbol* me = img->symbol("__this_module");
    ASSERT_NE(me, nullptr);
    EXPECT_EQ(img->symbol_in_section(me->shndx, me->value + 8), me);

    // Every .ko carries struct module (for __this_module): its layout comes
    // out of the relocated DWARF, and matches the vmlinux when given.
    auto types = kq::Types::open(path);
    auto list = types->offset("module", "list");
    auto size = types->size("module");
    ASSERT_TRUE(list && size);
    EXPECT_EQ(*size, me->size);
    std::string vm = vmlinux();
    if (!vm.empty()) {
        auto vt = kq::Types::open(vm);
        EXPECT_EQ(vt->offset("module", "list"), list);
        EXPECT_EQ(vt->size("module"), size);
        EXPECT_EQ(vt->offset("task_struct", "thread.sp"), types->offset("task_struct", "thread.sp"));
    }
}
