// The timers, hrtimers and workqueues providers.
//
// On the lab's real dumps ($KQ_DUMPS with kaslr.elf and nokaslr.elf,
// $KQ_VMLINUX; skipped without them): kq_timer's timer_list, kq_hrtimer's
// hrtimer, kq_work's delayed work and kq_workrun's running work are found,
// each calling the module function its .ko names, with complete coverage and
// quickly. Then the same dumps seen through a memory source that corrupts
// one pointer (a loop, an unreadable address): each provider must end with
// incomplete coverage instead of hanging. And the generic hlist / rbtree
// walks on fixture memory.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "kernel/linux/linux_system.h"
#include "kernel/linux/providers.h"
#include "kernel/list_walk.h"
#include "memory_fixture.h"
#include "lab_system.h"
#include "symbols/elf_image.h"

using namespace kq;

namespace {


#define NEED_DUMPS() KQ_NEED_LAB()

LinuxSystem& open_system(const std::string& name) { return test::lab_system(name); }

uint64_t ko_symbol(const LinuxSystem& sys, const std::string& mod, const std::string& name) {
    return test::module_symbol(sys, mod, name);
}

struct ProviderRun {
    Survey survey;
    double seconds = 0;
};

ProviderRun run(const LinuxKernel& k, const LinuxSystem& sys, void (*provider)(const SurveyContext&, Survey&)) {
    SurveyContext ctx{k, sys.threads(), sys.modules()};
    ProviderRun r;
    auto t0 = std::chrono::steady_clock::now();
    provider(ctx, r.survey);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

const KernelRef* find_ref(const Survey& s, RefKind kind, uint64_t func) {
    for (const auto& r : s.refs)
        if (r.kind == kind && r.func == func) return &r;
    return nullptr;
}

void expect_complete(const ProviderRun& r, const char* name) {
    ASSERT_EQ(r.survey.coverage.size(), 1u);
    const Coverage& c = r.survey.coverage[0];
    EXPECT_EQ(c.provider, name);
    EXPECT_TRUE(c.complete) << c.gap;
    std::printf("  %-10s %.3f s, %zu refs: %s%s%s\n", name, r.seconds, r.survey.refs.size(), c.covered.c_str(),
                c.complete ? "" : "; gap: ", c.gap.c_str());
}

// The reference of `kind` that calls mod's function fn (its address from the
// .ko), with its object in the module too; printed. nullptr (a failure) if absent.
const KernelRef* module_ref(const ProviderRun& run, RefKind kind, const LinuxSystem& sys, const std::string& mod,
                            const std::string& fn) {
    const KernelRef* r = find_ref(run.survey, kind, ko_symbol(sys, mod, fn));
    if (!r) {
        ADD_FAILURE() << fn << " not found as " << to_string(kind);
        return nullptr;
    }
    EXPECT_TRUE(sys.module(mod)->contains(r->func));
    EXPECT_TRUE(sys.module(mod)->contains(r->object)) << fn << ": the " << to_string(kind) << " lives in " << mod;
    std::printf("  %s %s: %s: %s\n", to_string(kind), fn.c_str(), r->subject.c_str(), r->detail.c_str());
    return r;
}

void check_dump(const std::string& name) {
    LinuxSystem& sys = open_system(name);
    const LinuxKernel& k = sys.kernel();

    ProviderRun timers = run(k, sys, survey_timers);
    expect_complete(timers, "timers");
    const KernelRef* t = module_ref(timers, RefKind::timer, sys, "kq_timer", "kq_timer_fn");
    ASSERT_TRUE(t);
    EXPECT_NE(t->subject.find("timer wheel (base"), std::string::npos) << t->subject;
    EXPECT_NE(t->detail.find("expires at jiffies"), std::string::npos) << t->detail;
    EXPECT_NE(t->detail.find(" s)"), std::string::npos) << "HZ derived: " << t->detail;
    // kq_work: a delayed work item, found through its pending timer.
    const KernelRef* dw = module_ref(timers, RefKind::work, sys, "kq_work", "kq_work_fn");
    ASSERT_TRUE(dw);
    EXPECT_EQ(dw->detail.rfind("delayed", 0), 0u) << dw->detail;

    ProviderRun hr = run(k, sys, survey_hrtimers);
    expect_complete(hr, "hrtimers");
    const KernelRef* h = module_ref(hr, RefKind::hrtimer, sys, "kq_hrtimer", "kq_hrtimer_fn");
    ASSERT_TRUE(h);
    EXPECT_NE(h->detail.find("CLOCK_MONOTONIC"), std::string::npos) << h->detail;

    ProviderRun wq = run(k, sys, survey_workqueues);
    expect_complete(wq, "workqueues");
    const KernelRef* w = module_ref(wq, RefKind::work, sys, "kq_workrun", "kq_workrun_fn");
    ASSERT_TRUE(w);
    ASSERT_EQ(w->tasks.size(), 1u);
    const Thread* kworker = nullptr;
    for (const auto& th : sys.threads())
        if (th.id == w->tasks[0]) kworker = &th;
    ASSERT_TRUE(kworker) << "pid " << w->tasks[0];
    EXPECT_EQ(kworker->name.rfind("kworker/", 0), 0u) << kworker->name;
    EXPECT_EQ(w->detail.rfind("running in task " + std::to_string(kworker->id) + " (" + kworker->name + ")", 0), 0u)
        << w->detail;
}

TEST(SurveyTimers, KaslrDump) {
    NEED_DUMPS();
    check_dump("kaslr.elf");
}

TEST(SurveyTimers, NoKaslrDump) {
    NEED_DUMPS();
    check_dump("nokaslr.elf");
}

TEST(SurveyTimers, KdumpCompressedDump) {
    NEED_DUMPS();
    check_dump("kaslr.kdump");
}

// The dump's memory with a few 8-byte words replaced.
class PatchedMemory : public MemorySource {
public:
    explicit PatchedMemory(MemorySource& in) : in_(in) {}
    void patch_u64(uint64_t addr, uint64_t v) { patches_[addr] = v; }
    size_t read(uint64_t vaddr, void* buf, size_t len) override {
        size_t n = in_.read(vaddr, buf, len);
        auto* out = static_cast<uint8_t*>(buf);
        for (const auto& [a, v] : patches_)
            for (unsigned i = 0; i < 8; ++i)
                if (a + i >= vaddr && a + i < vaddr + n) out[a + i - vaddr] = reinterpret_cast<const uint8_t*>(&v)[i];
        return n;
    }

private:
    MemorySource& in_;
    std::map<uint64_t, uint64_t> patches_;
};

constexpr uint64_t kUnmapped = 0xdead000000000100ull;  // non-canonical: never readable

// Runs `provider` over the kaslr dump with `corrupt` applied; it must finish
// fast with incomplete coverage whose gap mentions `problem`.
void expect_gap(void (*provider)(const SurveyContext&, Survey&),
                const std::function<void(LinuxSystem&, PatchedMemory&)>& corrupt, const std::string& problem) {
    LinuxSystem& sys = open_system("kaslr.elf");
    PatchedMemory mem(sys.dump());
    corrupt(sys, mem);
    LinuxKernel k(mem, sys.vmlinux(), sys.kernel().types(), sys.kernel().slide());
    ProviderRun r = run(k, sys, provider);
    ASSERT_EQ(r.survey.coverage.size(), 1u);
    const Coverage& c = r.survey.coverage[0];
    EXPECT_FALSE(c.complete);
    EXPECT_NE(c.gap.find(problem), std::string::npos) << c.gap;
    std::printf("  %s: %s; gap: %s\n", c.provider.c_str(), c.covered.c_str(), c.gap.c_str());
}

// A corruption of the object of mod's `kind` reference calling fn: the word at
// `member` of struct `type` in it pointed at its own `target` member (a loop),
// or at an unmapped address when target is null.
std::function<void(LinuxSystem&, PatchedMemory&)> corrupt_ref(void (*provider)(const SurveyContext&, Survey&),
                                                              RefKind kind, const char* mod, const char* fn,
                                                              const char* type, const char* member,
                                                              const char* target) {
    return [=](LinuxSystem& sys, PatchedMemory& mem) {
        ProviderRun r = run(sys.kernel(), sys, provider);
        const KernelRef* ref = find_ref(r.survey, kind, ko_symbol(sys, mod, fn));
        ASSERT_TRUE(ref) << fn;
        const LinuxKernel& k = sys.kernel();
        mem.patch_u64(ref->object + k.off(type, member), target ? ref->object + k.off(type, target) : kUnmapped);
    };
}

TEST(SurveyTimers, TimerListLoopIsAGap) {
    NEED_DUMPS();
    expect_gap(survey_timers,
               corrupt_ref(survey_timers, RefKind::timer, "kq_timer", "kq_timer_fn", "timer_list", "entry.next",
                           "entry"),
               "loops");
}

TEST(SurveyTimers, UnreadableTimerPointerIsAGap) {
    NEED_DUMPS();
    expect_gap(survey_timers,
               corrupt_ref(survey_timers, RefKind::timer, "kq_timer", "kq_timer_fn", "timer_list", "entry.next",
                           nullptr),
               "unreadable");
}

TEST(SurveyTimers, HrtimerTreeCycleIsAGap) {
    NEED_DUMPS();
    // Its own left child.
    expect_gap(survey_hrtimers,
               corrupt_ref(survey_hrtimers, RefKind::hrtimer, "kq_hrtimer", "kq_hrtimer_fn", "hrtimer",
                           "node.node.rb_left", "node.node"),
               "reached twice");
}

TEST(SurveyTimers, UnreadableHrtimerChildIsAGap) {
    NEED_DUMPS();
    expect_gap(survey_hrtimers,
               corrupt_ref(survey_hrtimers, RefKind::hrtimer, "kq_hrtimer", "kq_hrtimer_fn", "hrtimer",
                           "node.node.rb_right", nullptr),
               "unreadable");
}

TEST(SurveyTimers, BusyWorkerLoopIsAGap) {
    NEED_DUMPS();
    expect_gap(survey_workqueues, [](LinuxSystem& sys, PatchedMemory& mem) {
        // The first busy worker on any CPU's pools: its hentry.next to itself.
        const LinuxKernel& k = sys.kernel();
        uint64_t pool_size = k.types().size_or_throw("worker_pool");
        uint64_t buckets = *k.types().member_size("worker_pool", "busy_hash") / 8;
        for (int cpu = 0; cpu < k.nr_cpus(); ++cpu)
            for (uint64_t p = 0; p < 2; ++p) {
                uint64_t hash = k.per_cpu("cpu_worker_pools", cpu) + p * pool_size + k.off("worker_pool", "busy_hash");
                for (uint64_t b = 0; b < buckets; ++b)
                    if (uint64_t first = k.read_u64(hash + 8 * b).value_or(0)) {
                        mem.patch_u64(first, first);
                        return;
                    }
            }
        FAIL() << "no busy worker in the dump";
    }, "loops");
}

TEST(SurveyTimers, UnreadableWorklistIsAGap) {
    NEED_DUMPS();
    expect_gap(survey_workqueues, [](LinuxSystem& sys, PatchedMemory& mem) {
        const LinuxKernel& k = sys.kernel();
        mem.patch_u64(k.per_cpu("cpu_worker_pools", 0) + k.off("worker_pool", "worklist"), kUnmapped);
    }, "CPU 0 worker pool 0: work_struct at 0xdead0000000000f8 unreadable");
}

// The generic walks on fixture memory.
using test::FixtureMemory;

TEST(SurveyTimers, HlistWalkVisitsLoopsAndUnreadable) {
    FixtureMemory m;
    m.put_u64(0x1008, 0x2008);
    m.put_u64(0x2008, 0);
    std::vector<uint64_t> seen;
    auto r = walk_hlist(m, 0x1008, 8, [&](uint64_t e) { seen.push_back(e); return true; });
    EXPECT_TRUE(r.complete());
    EXPECT_EQ(seen, (std::vector<uint64_t>{0x1000, 0x2000}));
    EXPECT_TRUE(walk_hlist(m, 0, 0, [](uint64_t) { return true; }).complete());  // empty

    m.put_u64(0x2008, 0x1008);
    r = walk_hlist(m, 0x1008, 8, [](uint64_t) { return true; });
    EXPECT_EQ(r.problem, "hlist loops");
    EXPECT_EQ(r.count, 2u);

    m.put_u64(0x2008, 0x9000);
    r = walk_hlist(m, 0x1008, 8, [](uint64_t) { return true; });
    EXPECT_EQ(r.problem, "unreadable hlist pointer");
}

// rb_node as the kernel lays it out: parent_color, right, left.
void rb_put(FixtureMemory& m, uint64_t n, uint64_t left, uint64_t right) {
    m.put_u64(n, 0);
    m.put_u64(n + 8, right);
    m.put_u64(n + 16, left);
}

TEST(SurveyTimers, RbtreeWalkInOrderAndBounded) {
    FixtureMemory m;
    //        0x2000
    //   0x1000    0x3000
    rb_put(m, 0x2000, 0x1000, 0x3000);
    rb_put(m, 0x1000, 0, 0);
    rb_put(m, 0x3000, 0, 0);
    std::vector<uint64_t> seen;
    auto r = walk_rbtree(m, 0x2000, 16, 8, 0, [&](uint64_t e) { seen.push_back(e); return true; });
    EXPECT_TRUE(r.complete());
    EXPECT_EQ(seen, (std::vector<uint64_t>{0x1000, 0x2000, 0x3000}));
    EXPECT_TRUE(walk_rbtree(m, 0, 16, 8, 0, [](uint64_t) { return true; }).complete());

    rb_put(m, 0x3000, 0x2000, 0);  // a child pointing back up
    r = walk_rbtree(m, 0x2000, 16, 8, 0, [](uint64_t) { return true; });
    EXPECT_FALSE(r.complete());
    EXPECT_NE(r.problem.find("reached twice"), std::string::npos);

    rb_put(m, 0x3000, 0x7777000, 0);
    r = walk_rbtree(m, 0x2000, 16, 8, 0, [](uint64_t) { return true; });
    EXPECT_EQ(r.problem, "unreadable rbtree pointer");

    // A degenerate chain deeper than any recursion could go, then the limit.
    FixtureMemory chain;
    const uint64_t n = 200000;
    std::vector<uint64_t> nodes(4 * n, 0);  // 32-byte nodes: parent_color, right, left, pad
    for (uint64_t i = 0; i + 1 < n; ++i) nodes[4 * i + 2] = 0x100000 + 32 * (i + 1);
    chain.put(0x100000, nodes.data(), nodes.size() * 8);
    r = walk_rbtree(chain, 0x100000, 16, 8, 0, [](uint64_t) { return true; });
    EXPECT_TRUE(r.complete());
    EXPECT_EQ(r.count, n);
    r = walk_rbtree(chain, 0x100000, 16, 8, 0, [](uint64_t) { return true; }, 1000);
    EXPECT_FALSE(r.complete());
}

}  // namespace
