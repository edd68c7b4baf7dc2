// The tasklet, irq_work, RCU callback, IRQ handler and device providers.
//
// On the lab's real dumps ($KQ_DUMPS with kaslr.elf and nokaslr.elf,
// $KQ_VMLINUX; skipped without them): each provider covers everything (its time
// is printed; speed is for bench/, not for tests); the timer and serial interrupts have their vmlinux handlers; the
// kq_chardev misc device is among the devices, its driver_data the module's
// miscdevice. Then the kaslr dump read through memory with one word changed
// (a list pointing at itself, an unmapped pointer, a count that lies): each
// provider must stop on it quickly and say so in its coverage.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "kernel/linux/linux_system.h"
#include "kernel/linux/providers.h"
#include "kernel/list_walk.h"
#include "lab_system.h"
#include "symbols/elf_image.h"

using namespace kq;

namespace {

using Provider = void (*)(const SurveyContext&, Survey&);

using test::lab;

using test::lab_system;

uint64_t address_in(const LinuxSystem& sys, const std::string& mod, const std::string& name) {
    try {
        return test::module_symbol(sys, mod, name);
    } catch (const std::runtime_error&) {
        return 0;
    }
}

struct Outcome {
    Survey survey;
    double seconds = 0;
    const Coverage& coverage() const { return survey.coverage.at(0); }
};

Outcome survey_with(const LinuxKernel& k, const LinuxSystem& sys, Provider provider) {
    Outcome o;
    const SurveyContext ctx{k, sys.threads(), sys.modules()};
    const auto start = std::chrono::steady_clock::now();
    provider(ctx, o.survey);
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return o;
}

// Runs `provider` on the dump: one coverage entry named `name`, complete, fast.
Outcome complete_run(LinuxSystem& sys, Provider provider, const char* name) {
    Outcome o = survey_with(sys.kernel(), sys, provider);
    EXPECT_EQ(o.survey.coverage.size(), 1u) << name;
    if (o.survey.coverage.size() != 1) return o;
    EXPECT_EQ(o.coverage().provider, name);
    EXPECT_TRUE(o.coverage().complete) << name << ": " << o.coverage().gap;
    std::printf("  %-13s %.3f s, %zu refs: %s\n", name, o.seconds, o.survey.refs.size(),
                o.coverage().covered.c_str());
    return o;
}

std::vector<const KernelRef*> refs_of(const Survey& s, RefKind kind, const std::function<bool(const KernelRef&)>& want) {
    std::vector<const KernelRef*> out;
    for (const auto& r : s.refs)
        if (r.kind == kind && want(r)) out.push_back(&r);
    return out;
}

class Deferred : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        if (!lab().present()) GTEST_SKIP() << "set KQ_DUMPS and KQ_VMLINUX to the lab's dumps to run this test";
    }
    LinuxSystem& sys() { return lab_system(GetParam()); }
};

TEST_P(Deferred, QueuedWorkListsAreReadCompletely) {
    const std::tuple<Provider, const char*, RefKind> lists[] = {{survey_tasklets, "tasklets", RefKind::tasklet},
                                                                {survey_irq_work, "irq_work", RefKind::irq_work},
                                                                {survey_rcu, "rcu callbacks", RefKind::rcu_callback}};
    for (const auto& [provider, name, kind] : lists) {
        Outcome o = complete_run(sys(), provider, name);
        for (const auto& r : o.survey.refs) {
            EXPECT_EQ(r.kind, kind) << name;
            EXPECT_NE(r.object, 0u) << name << ": " << r.subject;
            EXPECT_EQ(r.subject.rfind("CPU ", 0), 0u) << r.subject;
        }
    }
}

TEST_P(Deferred, TimerAndSerialInterruptHandlers) {
    LinuxSystem& s = sys();
    Outcome o = complete_run(s, survey_irqs, "irq handlers");
    const LinuxKernel& k = s.kernel();
    auto handler = [&](const char* fn, const char* subject) {
        uint64_t a = k.symbol(fn);
        auto hits = refs_of(o.survey, RefKind::irq_handler,
                            [&](const KernelRef& r) { return r.func == a && r.subject == subject; });
        EXPECT_EQ(hits.size(), 1u) << fn << " as " << subject;
        if (hits.empty()) return;
        EXPECT_NE(hits[0]->object, 0u) << "the irqaction";
        EXPECT_EQ(hits[0]->detail, "handler");
        std::printf("  %s: %s\n", subject, fn);
    };
    handler("timer_interrupt", "IRQ 0 (timer)");
    handler("serial8250_interrupt", "IRQ 4 (ttyS0)");
    // Every descriptor has its flow handler, a vmlinux function, with its chip.
    auto flows = refs_of(o.survey, RefKind::irq_handler, [](const KernelRef& r) { return r.detail.rfind("flow handler", 0) == 0; });
    EXPECT_GE(flows.size(), 16u);
    for (const auto* f : flows) EXPECT_TRUE(s.vmlinux().symbol_at(f->func - k.slide())) << f->subject;
    // No handler, flow or action, lies in a module of the lab.
    for (const auto& r : o.survey.refs)
        for (const auto& m : s.modules()) EXPECT_FALSE(m.contains(r.func)) << r.subject << " in " << m.name;
}

TEST_P(Deferred, DevicesIncludeTheChardevMiscDevice) {
    LinuxSystem& s = sys();
    Outcome o = complete_run(s, survey_devices, "devices");
    auto chardev = refs_of(o.survey, RefKind::device, [](const KernelRef& r) { return r.subject == "device kq_chardev"; });
    ASSERT_FALSE(chardev.empty()) << "no device kq_chardev";
    uint64_t misc = address_in(s, "kq_chardev", "kq_chardev_dev");
    ASSERT_NE(misc, 0u);
    bool drvdata = false, release = false, misc_class = false;
    for (const auto* r : chardev) {
        EXPECT_EQ(r->object, chardev[0]->object) << "one struct device";
        drvdata |= r->data == misc && r->detail == "driver_data";
        release |= r->func == s.kernel().symbol("device_create_release");
        misc_class |= r->detail == "class misc";
        std::printf("  %s: func %#llx data %#llx: %s\n", r->subject.c_str(), (unsigned long long)r->func,
                    (unsigned long long)r->data, r->detail.c_str());
    }
    EXPECT_TRUE(drvdata) << "its driver_data is kq_chardev_dev";
    EXPECT_TRUE(release) << "device_create() gave it device_create_release";
    EXPECT_TRUE(misc_class);
    std::set<uint64_t> devices;
    for (const auto& r : o.survey.refs) devices.insert(r.object);
    EXPECT_GE(devices.size(), 50u);
}

INSTANTIATE_TEST_SUITE_P(LabDumps, Deferred, ::testing::Values("kaslr.elf", "nokaslr.elf"),
                         [](const auto& info) { return std::string(info.param).substr(0, std::string(info.param).find('.')); });

// The dump's memory with some 8-byte words replaced, and pages of made-up
// memory (zeros until set) where the dump has none.
class ChangedWords : public MemorySource {
public:
    explicit ChangedWords(MemorySource& under) : under_(under) {}
    void set(uint64_t addr, uint64_t value) { words_[addr] = value; }
    void add_page(uint64_t addr) { pages_[addr].assign(4096, 0); }
    size_t read(uint64_t vaddr, void* buf, size_t len) override {
        for (const auto& [start, bytes] : pages_)
            if (vaddr - start < bytes.size()) {
                size_t n = std::min<size_t>(len, bytes.size() - (vaddr - start));
                std::memcpy(buf, bytes.data() + (vaddr - start), n);
                return patch(vaddr, buf, n);
            }
        return patch(vaddr, buf, under_.read(vaddr, buf, len));
    }

private:
    size_t patch(uint64_t vaddr, void* buf, size_t n) {
        for (const auto& [addr, value] : words_)
            for (uint64_t b = 0; b < 8; ++b)
                if (addr + b - vaddr < n) static_cast<uint8_t*>(buf)[addr + b - vaddr] = uint8_t(value >> (8 * b));
        return n;
    }

    MemorySource& under_;
    std::map<uint64_t, uint64_t> words_;
    std::map<uint64_t, std::vector<uint8_t>> pages_;
};

constexpr uint64_t kNowhere = 0xdead000000000100ull;  // not canonical: never readable

class DeferredChangedDump : public ::testing::Test {
protected:
    void SetUp() override {
        if (!lab().present()) GTEST_SKIP() << "set KQ_DUMPS and KQ_VMLINUX to the lab's dumps to run this test";
    }
    LinuxSystem& sys() { return lab_system("kaslr.elf"); }
    const LinuxKernel& k() { return sys().kernel(); }

    // `provider` over the kaslr dump with `change` applied: a gap mentioning `problem`, quickly.
    void expect_gap(Provider provider, const std::function<void(ChangedWords&)>& change, const std::string& problem) {
        ChangedWords mem(sys().dump());
        change(mem);
        LinuxKernel changed(mem, sys().vmlinux(), k().types(), k().slide());
        Outcome o = survey_with(changed, sys(), provider);
        ASSERT_EQ(o.survey.coverage.size(), 1u);
        EXPECT_FALSE(o.coverage().complete);
        EXPECT_NE(o.coverage().gap.find(problem), std::string::npos) << o.coverage().gap;
        std::printf("  %s: %s; gap: %s\n", o.coverage().provider.c_str(), o.coverage().covered.c_str(),
                    o.coverage().gap.c_str());
    }
};

// Entries the lab's dump does not have, made up in a page of their own and
// queued on the kernel's real lists, calling kq_idle's exit function: each is
// reported with that function, and with what the kernel will do with it.
TEST_F(DeferredChangedDump, MadeUpEntriesAreReported) {
    const LinuxKernel& K = k();
    const uint64_t fn = address_in(sys(), "kq_idle", "cleanup_module");
    ASSERT_TRUE(sys().module("kq_idle")->contains(fn));
    const uint64_t page = 0xffffc9ffff000000ull, tasklet = page, work = page + 0x100, cb = page + 0x200,
                   action = page + 0x300, name = page + 0x380;
    ChangedWords mem(sys().dump());
    ASSERT_FALSE(mem.read_u64(page)) << "the made-up page must be outside the dump";
    mem.add_page(page);
    auto with = [&](Provider provider) {
        LinuxKernel changed(mem, sys().vmlinux(), K.types(), K.slide());
        Outcome o = survey_with(changed, sys(), provider);
        EXPECT_TRUE(o.coverage().complete) << o.coverage().gap;
        std::printf("  %s: %s\n", o.coverage().provider.c_str(), o.coverage().covered.c_str());
        for (const auto& r : o.survey.refs)
            if (r.object >= page && r.object < page + 4096)
                std::printf("    %s: %s\n", r.subject.c_str(), r.detail.c_str());
        return o;
    };
    // The one reference whose object is `object`.
    auto the_ref = [](const Outcome& o, uint64_t object) -> const KernelRef* {
        const KernelRef* found = nullptr;
        size_t n = 0;
        for (const auto& r : o.survey.refs)
            if (r.object == object) found = &r, ++n;
        return n == 1 ? found : nullptr;
    };

    // A tasklet with a callback on CPU 1's tasklet_vec.
    mem.set(tasklet + K.off("tasklet_struct", "state"), 1);  // TASKLET_STATE_SCHED
    mem.set(tasklet + K.off("tasklet_struct", "use_callback"), 1);
    mem.set(tasklet + K.off("tasklet_struct", "callback"), fn);
    uint64_t vec = K.per_cpu("tasklet_vec", 1);
    mem.set(vec + K.off("tasklet_head", "head"), tasklet);
    mem.set(vec + K.off("tasklet_head", "tail"), tasklet + K.off("tasklet_struct", "next"));
    Outcome t = with(survey_tasklets);
    const KernelRef* tr = the_ref(t, tasklet);
    ASSERT_TRUE(tr);
    EXPECT_EQ(tr->func, fn);
    EXPECT_EQ(tr->subject, "CPU 1 tasklet_vec");
    EXPECT_EQ(tr->detail, "scheduled; runs callback(t)");

    // A lazy irq_work on CPU 0.
    mem.set(work + K.off("irq_work", "node.u_flags"), uint64_t(*K.types().enumerator("IRQ_WORK_LAZY")));
    mem.set(work + K.off("irq_work", "func"), fn);
    mem.set(K.per_cpu("lazy_list", 0) + K.off("llist_head", "first"), work + K.off("irq_work", "node.llist"));
    Outcome w = with(survey_irq_work);
    const KernelRef* wr = the_ref(w, work);
    ASSERT_TRUE(wr);
    EXPECT_EQ(wr->func, fn);
    EXPECT_EQ(wr->subject, "CPU 0 lazy_list");
    EXPECT_NE(wr->detail.find("lazy"), std::string::npos) << wr->detail;

    // Two RCU callbacks on CPU 0: one waiting for the current grace period,
    // then a kfree_rcu() (func: the offset 16 of its rcu_head) not yet given one.
    const uint64_t cblist = K.per_cpu("rcu_data", 0) + K.off("rcu_data", "cblist");
    const uint64_t cb2 = cb + 0x10, tails = cblist + K.off("rcu_segcblist", "tails");
    mem.set(cb + K.off("callback_head", "next"), cb2);
    mem.set(cb + K.off("callback_head", "func"), fn);
    mem.set(cb2 + K.off("callback_head", "func"), 16);
    mem.set(cblist + K.off("rcu_segcblist", "head"), cb);
    const uint64_t tail_words[4] = {cblist + K.off("rcu_segcblist", "head"), cb, cb, cb2};  // DONE WAIT NEXT_READY NEXT
    for (int i = 0; i < 4; ++i) mem.set(tails + 8 * i, tail_words[i]);
    mem.set(cblist + K.off("rcu_segcblist", "len"), 2);
    Outcome r = with(survey_rcu);
    const KernelRef* r1 = the_ref(r, cb);
    const KernelRef* r2 = the_ref(r, cb2);
    ASSERT_TRUE(r1 && r2);
    EXPECT_EQ(r1->func, fn);
    EXPECT_EQ(r1->subject, "CPU 0 rcu_data");
    EXPECT_EQ(r1->detail, "waiting for the current grace period");
    EXPECT_EQ(r2->func, 0u);
    EXPECT_EQ(r2->detail, "kfree_rcu(): frees the object at " + addr_text(cb2 - 16) +
                                  " (its rcu_head at offset 16), no function; queued, no grace period yet");

    // A threaded handler shared with the timer interrupt.
    Outcome before = survey_with(K, sys(), survey_irqs);
    auto timer = refs_of(before.survey, RefKind::irq_handler, [&](const KernelRef& x) { return x.func == K.symbol("timer_interrupt"); });
    ASSERT_EQ(timer.size(), 1u);
    mem.set(timer[0]->object + K.off("irqaction", "next"), action);
    mem.set(action + K.off("irqaction", "handler"), K.symbol("irq_default_primary_handler"));
    mem.set(action + K.off("irqaction", "thread_fn"), fn);
    mem.set(action + K.off("irqaction", "name"), name);
    mem.set(name, 0x656b61665f716bull);  // "kq_fake"
    Outcome i = with(survey_irqs);
    auto fake = refs_of(i.survey, RefKind::irq_handler, [&](const KernelRef& x) { return x.object == action; });
    ASSERT_EQ(fake.size(), 2u);
    EXPECT_EQ(fake[0]->subject, "IRQ 0 (kq_fake)");
    EXPECT_EQ(fake[1]->func, fn);
    EXPECT_EQ(fake[1]->detail, "threaded handler");
}

TEST_F(DeferredChangedDump, TaskletListLoopsOrLosesItsTail) {
    // The head pointing at itself: a tasklet whose `next` is itself.
    uint64_t vec = k().per_cpu("tasklet_vec", 0);
    expect_gap(survey_tasklets, [&](ChangedWords& m) { m.set(vec + k().off("tasklet_head", "head"), vec); }, "loops");
    expect_gap(survey_tasklets, [&](ChangedWords& m) { m.set(vec + k().off("tasklet_head", "tail"), kNowhere); },
               "CPU 0 tasklet_vec: the chain ends before its tail");
}

TEST_F(DeferredChangedDump, UnreadableIrqWork) {
    uint64_t raised = k().per_cpu("raised_list", k().nr_cpus() - 1);
    expect_gap(survey_irq_work, [&](ChangedWords& m) { m.set(raised + k().off("llist_head", "first"), kNowhere); },
               "raised_list: irq_work at 0xdead000000000100 unreadable");
}

TEST_F(DeferredChangedDump, RcuListLoopsOrMissesCallbacks) {
    uint64_t cblist = k().per_cpu("rcu_data", 0) + k().off("rcu_data", "cblist");
    uint64_t head = cblist + k().off("rcu_segcblist", "head");
    expect_gap(survey_rcu, [&](ChangedWords& m) { m.set(head, head); }, "loops");
    uint64_t len = cblist + k().off("rcu_segcblist", "len");
    uint64_t now = k().read_u64(len).value_or(0);
    expect_gap(survey_rcu, [&](ChangedWords& m) { m.set(len, now + 3); }, "callbacks being invoked are not seen");
}

TEST_F(DeferredChangedDump, IrqActionLoopAndUnreadableTree) {
    // The timer interrupt's irqaction chained to itself.
    Outcome o = survey_with(k(), sys(), survey_irqs);
    auto timer = refs_of(o.survey, RefKind::irq_handler, [&](const KernelRef& r) { return r.func == k().symbol("timer_interrupt"); });
    ASSERT_EQ(timer.size(), 1u);
    uint64_t action = timer[0]->object;
    expect_gap(survey_irqs, [&](ChangedWords& m) { m.set(action + k().off("irqaction", "next"), action); },
               "IRQ 0: irqaction chain loops");
    // The tree's head: a node nowhere.
    uint64_t tree = k().symbol("irq_desc_tree") + k().off("xarray", "xa_head");
    expect_gap(survey_irqs, [&](ChangedWords& m) { m.set(tree, kNowhere | 2); }, "unreadable");
}

TEST_F(DeferredChangedDump, DeviceListLoopsOrBreaks) {
    Outcome o = survey_with(k(), sys(), survey_devices);
    auto chardev = refs_of(o.survey, RefKind::device, [](const KernelRef& r) { return r.subject == "device kq_chardev"; });
    ASSERT_FALSE(chardev.empty());
    uint64_t entry = chardev[0]->object + k().off("device", "kobj") + k().off("kobject", "entry");
    expect_gap(survey_devices, [&](ChangedWords& m) { m.set(entry, entry); }, "loops");
    expect_gap(survey_devices, [&](ChangedWords& m) { m.set(entry, kNowhere); },
               "struct device at " + addr_text(kNowhere - k().off("device", "kobj") - k().off("kobject", "entry")) +
                       " unreadable");
}

}  // namespace
