// The OS-neutral view of an opened kernel (KernelSystem, KernelUnwinder),
// as the plugin's commands read it, over the FreeBSD fixture.
#include <gtest/gtest.h>

#include "freebsd_system_fixture.h"
#include "kernel/kernel_os.h"

using namespace kq;
using namespace kq::fbsdtest;

TEST(KernelSystem, FreebsdThroughTheInterface) {
    KQ_NEED_FBSD_FIXTURE();
    for (const std::string form : {"minidump", "elf"}) {
        FreebsdSystem& fs = fbsd_system("busy", form);
        KernelSystem& k = fs;
        EXPECT_EQ(k.os(), KernelOs::FreeBSD);
        EXPECT_EQ(detect_os(k.image()), KernelOs::FreeBSD);
        EXPECT_EQ(k.release(), fs.release());
        EXPECT_EQ(k.slide(), 0u);
        EXPECT_TRUE(k.is_dump());
        EXPECT_EQ(&k.memory(), static_cast<MemorySource*>(&k.dump()));
        EXPECT_EQ(k.cpu_count(), 2u);
        EXPECT_EQ(k.direct_map_base(), 0u);  // not known: no words are attributed by it

        // The kernel's linker file: the image, not the module.
        const Range img = k.image_range();
        EXPECT_TRUE(img.contains(k.image().symbol("btext")->value)) << std::hex << img.start << "+" << img.size;
        EXPECT_TRUE(img.contains(k.image().symbol("allproc")->value));
        const Module* m = k.module("kq_fbsd");
        ASSERT_NE(m, nullptr);
        EXPECT_FALSE(img.contains(m->ranges.front().start));
        EXPECT_EQ(k.module("kq_fbsd.ko"), m);
        EXPECT_EQ(k.module("nonesuch"), nullptr);

        std::vector<std::string> providers;
        const Survey sv = k.survey([&](const std::string& p) { providers.push_back(p); });
        EXPECT_EQ(providers.size(), sv.coverage.size());
        EXPECT_FALSE(sv.refs.empty());
    }
}

TEST(KernelSystem, FreebsdUnwinderThroughTheInterface) {
    KQ_NEED_FBSD_FIXTURE();
    FreebsdSystem& fs = fbsd_system("busy", "minidump");
    FreebsdUnwinder fu(fs.kernel(), fs.modules());
    KernelUnwinder& u = fu;
    EXPECT_TRUE(u.cpu_stacks().empty());
    const Module& m = *fs.module("kq_fbsd");
    for (const Thread& t : fs.threads()) {
        if (t.name != "kq_fbsd_sleep") continue;
        const auto frames = u.unwind(t);
        ASSERT_FALSE(frames.empty());
        EXPECT_TRUE(is_base(frames.back().stop));
        bool in_module = false;
        for (const auto& f : frames)
            if (m.contains(f.lookup_pc())) {
                in_module = true;
                EXPECT_EQ(u.describe(f).rfind("kq_fbsd_sleeper+", 0), 0u) << u.describe(f);
                EXPECT_EQ(u.code_map().function_at(f.lookup_pc())->name, "kq_fbsd_sleeper");
            }
        EXPECT_TRUE(in_module);
        for (const auto& w : u.scan(t, frames)) EXPECT_NE(w.value, 0u);
        return;
    }
    FAIL() << "no thread kq_fbsd_sleep";
}
