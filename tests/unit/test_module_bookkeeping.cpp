// The kernel's records of a loaded module (kernel/linux/module_bookkeeping)
// on the lab's real dumps: each scenario module's sect_attrs, notes_attrs,
// vmap_area and vm_struct are found, with nothing left unidentified, and
// ftrace's record of kq_notifier_call. Skipped without the lab.
#include <gtest/gtest.h>

#include <algorithm>

#include "kernel/linux/linux_system.h"
#include "kernel/linux/module_bookkeeping.h"
#include "lab_system.h"

using namespace kq;

namespace {

class Bookkeeping : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        KQ_NEED_LAB();
        sys_ = &test::lab_system(GetParam());
    }
    const Module& module(const char* name) {
        const Module* m = sys_->module(name);
        if (!m) throw std::runtime_error(std::string("not loaded: ") + name);
        return *m;
    }
    const BookkeepingObject* find(const ModuleBookkeeping& bk, const std::string& prefix) {
        for (const auto& o : bk.objects)
            if (o.what.rfind(prefix, 0) == 0) return &o;
        return nullptr;
    }
    LinuxSystem* sys_ = nullptr;
};

TEST_P(Bookkeeping, ScenarioModulesRecordsAreFound) {
    LinuxKernel& k = sys_->kernel();
    for (const char* name : {"kq_idle", "kq_timer", "kq_notifier", "kq_chardev", "kq_dep_a"}) {
        const Module& m = module(name);
        ModuleBookkeeping bk = module_bookkeeping(k, m, sys_->modules());
        EXPECT_TRUE(bk.problems.empty()) << name << ": " << bk.problems.front();
        EXPECT_EQ(bk.module_struct.start, m.addr);
        EXPECT_EQ(bk.module_struct.size, k.types().size("module").value());

        const auto* sa = find(bk, "sect_attrs of " + m.name + " (");
        ASSERT_NE(sa, nullptr) << name;
        EXPECT_EQ(sa->start, k.read_u64(m.addr + k.off("module", "sect_attrs")));
        EXPECT_NE(sa->what.find("(" + std::to_string(m.sections.size()) + " sections)"), std::string::npos) << sa->what;
        EXPECT_NE(find(bk, "notes_attrs of " + m.name), nullptr) << name;

        const auto* va = find(bk, "vmap_area of " + m.name);
        const auto* vm = find(bk, "vm_struct of " + m.name);
        ASSERT_NE(va, nullptr) << name;
        ASSERT_NE(vm, nullptr) << name;
        uint64_t base = m.ranges.front().start;
        for (const auto& r : m.ranges) base = std::min(base, r.start);
        EXPECT_EQ(k.read_u64(va->start + k.off("vmap_area", "va_start")), base) << name;
        EXPECT_EQ(k.read_u64(vm->start + k.off("vm_struct", "addr")), base) << name;
        // Words of the module's own memory are never bookkeeping: the scan skips them.
        for (const auto& o : bk.objects)
            EXPECT_FALSE(m.contains(o.start)) << name << ": " << o.what;
        std::printf("  %s: %zu objects\n", name, bk.objects.size());
    }
}

TEST_P(Bookkeeping, FtraceRecordOfKqNotifierCall) {
    LinuxKernel& k = sys_->kernel();
    const uint64_t call = test::module_symbol(*sys_, "kq_notifier", "kq_notifier_call");
    ModuleBookkeeping bk = module_bookkeeping(k, module("kq_notifier"), sys_->modules());
    size_t records = 0;
    for (const auto& o : bk.objects)
        if (o.what.rfind("ftrace record of kq_notifier", 0) == 0) {
            ++records;
            EXPECT_EQ(o.size, k.types().size("dyn_ftrace").value());
            EXPECT_TRUE(module("kq_notifier").contains(k.read_u64(o.start + k.off("dyn_ftrace", "ip")).value_or(0)));
            if (k.read_u64(o.start + k.off("dyn_ftrace", "ip")) == call) std::printf("  %s\n", o.what.c_str());
        }
    EXPECT_GE(records, 1u);
}

INSTANTIATE_TEST_SUITE_P(LabDumps, Bookkeeping, ::testing::Values("kaslr.elf", "nokaslr.elf"),
                         [](const auto& info) { return std::string(info.param).substr(0, std::string(info.param).find('.')); });

}  // namespace
