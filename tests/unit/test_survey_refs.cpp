// The wait queue, lock, notifier and open file providers on the lab's real
// dumps ($KQ_DUMPS with kaslr.elf and nokaslr.elf, $KQ_VMLINUX): each
// scenario module's own reference is found (kq_sleep's wait queue,
// kq_mutex's mutex, kq_rwsem's rw_semaphore, kq_notifier's reboot notifier,
// kq_chardev's open file) and coverage is complete (each provider's time
// is printed). Then the same dump read through corrupted memory: every provider
// stops on its bad list and says so in its coverage, without hanging.
// Skipped without KQ_DUMPS.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "inuse/report.h"
#include "kernel/linux/linux_system.h"
#include "kernel/linux/providers.h"
#include "lab_system.h"
#include "symbols/elf_image.h"

using namespace kq;

namespace {

using test::lab_system;
using test::module_symbol;

std::string dumps_dir() { return test::lab().dumps; }
LinuxSystem& open_system(const std::string& file) { return lab_system(file); }

const Thread& thread_named(const LinuxSystem& sys, const std::string& name) {
    for (const auto& t : sys.threads())
        if (t.name == name) return t;
    throw std::runtime_error("no task named " + name);
}

struct Timed {
    Survey survey;
    double ms = 0;
    const Coverage* coverage() const { return survey.coverage.size() == 1 ? &survey.coverage[0] : nullptr; }
};

Timed timed(void (*provider)(const SurveyContext&, Survey&), const SurveyContext& ctx) {
    Timed r;
    auto t0 = std::chrono::steady_clock::now();
    provider(ctx, r.survey);
    r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

class SurveyRefs : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        if (dumps_dir().empty()) GTEST_SKIP() << "KQ_DUMPS/KQ_VMLINUX not set: no lab dumps";
        sys_ = &open_system(GetParam());
    }

    const Module& module(const char* name) {
        const Module* m = sys_->module(name);
        if (!m) throw std::runtime_error(std::string("module not loaded: ") + name);
        return *m;
    }
    const Thread& thread(const char* name) { return thread_named(*sys_, name); }
    uint64_t symbol(const char* module, const char* name) { return module_symbol(*sys_, module, name); }

    Timed run_checked(void (*provider)(const SurveyContext&, Survey&), const char* name) {
        SurveyContext ctx{sys_->kernel(), sys_->threads(), sys_->modules()};
        Timed r = timed(provider, ctx);
        const Coverage* c = r.coverage();
        EXPECT_NE(c, nullptr) << name << ": exactly one coverage entry";
        if (c) {
            EXPECT_EQ(c->provider, name);
            EXPECT_TRUE(c->complete) << name << ": " << c->gap;
            std::printf("  %s: %s (%zu refs, %.0f ms)\n", name, c->covered.c_str(), r.survey.refs.size(), r.ms);
        }
        if (std::getenv("KQ_SURVEY_PRINT"))  // every reference, to read by hand
            for (const auto& ref : r.survey.refs)
                std::printf("    %s func=%#llx object=%#llx data=%#llx %s: %s\n", to_string(ref.kind),
                            (unsigned long long)ref.func, (unsigned long long)ref.object,
                            (unsigned long long)ref.data, ref.subject.c_str(), ref.detail.c_str());
        return r;
    }

    LinuxSystem* sys_ = nullptr;
};

// The references of one kind that `want` accepts.
std::vector<KernelRef> refs_of(const Timed& r, RefKind kind, const std::function<bool(const KernelRef&)>& want) {
    std::vector<KernelRef> out;
    for (const auto& ref : r.survey.refs)
        if (ref.kind == kind && want(ref)) out.push_back(ref);
    return out;
}

TEST_P(SurveyRefs, KqSleepIsOnItsModulesWaitQueue) {
    Timed r = run_checked(survey_wait_queues, "wait queues");
    const Thread& t = thread("kq_sleep");
    auto mine = refs_of(r, RefKind::wait_queue, [&](const KernelRef& ref) { return ref.tasks == std::vector{t.id}; });
    ASSERT_EQ(mine.size(), 1u) << "wait queues of kq_sleep";
    EXPECT_EQ(mine[0].object, symbol("kq_sleep", "kq_sleep_wq"));
    EXPECT_TRUE(module("kq_sleep").contains(mine[0].object));
    EXPECT_EQ(mine[0].subject, task_label(t));
    // kq_mutex_owner sleeps on kq_mutex_wq while holding the mutex.
    uint64_t mwq = symbol("kq_mutex", "kq_mutex_wq");
    int64_t owner = thread("kq_mutex_owner").id;
    EXPECT_EQ(refs_of(r, RefKind::wait_queue, [&](const KernelRef& ref) {
                  return ref.object == mwq && ref.tasks == std::vector{owner};
              }).size(), 1u);
}

void expect_lock(const Timed& r, uint64_t lock, const Thread& owner, const Thread& waiter, const std::string& held) {
    auto locks = refs_of(r, RefKind::lock, [&](const KernelRef& ref) { return ref.object == lock; });
    ASSERT_EQ(locks.size(), 1u) << "lock held by " << owner.name;
    EXPECT_EQ(locks[0].tasks, (std::vector<int64_t>{owner.id, waiter.id}));
    EXPECT_EQ(locks[0].detail, held + task_label(owner) + ", 1 waiter");
    std::printf("  %s: %s\n", locks[0].subject.c_str(), locks[0].detail.c_str());
}

TEST_P(SurveyRefs, ModuleMutexAndRwsemWithOwnerAndWaiter) {
    Timed r = run_checked(survey_locks, "locks");
    expect_lock(r, symbol("kq_mutex", "kq_mutex_lock"), thread("kq_mutex_owner"), thread("kq_mutex_waiter"),
                "mutex held by ");
    expect_lock(r, symbol("kq_rwsem", "kq_rwsem_lock"), thread("kq_rwsem_owner"), thread("kq_rwsem_waiter"),
                "rw_semaphore held for writing by ");
}

TEST_P(SurveyRefs, KqNotifierOnTheRebootChain) {
    Timed r = run_checked(survey_notifiers, "notifiers");
    for (const auto& ref : r.survey.refs) EXPECT_NE(ref.func, 0u) << ref.subject;
    uint64_t call = symbol("kq_notifier", "kq_notifier_call");
    auto mine = refs_of(r, RefKind::notifier, [&](const KernelRef& ref) { return ref.func == call; });
    ASSERT_EQ(mine.size(), 1u);
    EXPECT_EQ(mine[0].subject, "reboot_notifier_list");
    EXPECT_EQ(mine[0].object, symbol("kq_notifier", "kq_notifier_nb"));
    EXPECT_EQ(mine[0].detail, "priority 0");
}

TEST_P(SurveyRefs, SleepHoldsKqChardevOpen) {
    Timed r = run_checked(survey_open_files, "open files");
    const Thread& t = thread("sleep");
    const Module& m = module("kq_chardev");
    auto mine = refs_of(r, RefKind::open_file, [&](const KernelRef& ref) { return m.contains(ref.data); });
    ASSERT_EQ(mine.size(), 1u);
    EXPECT_EQ(mine[0].data, symbol("kq_chardev", "kq_chardev_fops"));
    EXPECT_EQ(mine[0].tasks, std::vector{t.id});
    EXPECT_EQ(mine[0].subject.rfind(task_label(t) + " fd ", 0), 0u) << mine[0].subject;
    EXPECT_EQ(mine[0].detail, "/dev/kq_chardev");
}

// All four together through the in-use analysis: each scenario module gets
// blocking evidence of its kind, and kq_idle none.
TEST_P(SurveyRefs, ScenarioModulesGetBlockingEvidence) {
    SurveyContext ctx{sys_->kernel(), sys_->threads(), sys_->modules()};
    Survey all;
    for (auto* p : {survey_wait_queues, survey_locks, survey_notifiers, survey_open_files}) p(ctx, all);
    auto kinds = [&](const char* name) {
        InuseInput in;
        in.module = &module(name);
        in.survey = all;
        std::set<std::string> k;
        for (const auto& e : analyze(in).evidence)
            if (e.severity == Severity::blocking) k.insert(e.kind);
        return k;
    };
    using S = std::set<std::string>;
    EXPECT_EQ(kinds("kq_sleep"), (S{"wait_queue"}));
    EXPECT_EQ(kinds("kq_mutex"), (S{"wait_queue", "lock"}));
    EXPECT_EQ(kinds("kq_rwsem"), (S{"wait_queue", "lock"}));
    EXPECT_EQ(kinds("kq_notifier"), (S{"notifier"}));
    EXPECT_EQ(kinds("kq_chardev"), (S{"open_file"}));
    EXPECT_EQ(kinds("kq_idle"), S{});
    EXPECT_EQ(kinds("kq_spin"), S{});
}

INSTANTIATE_TEST_SUITE_P(LabDumps, SurveyRefs, ::testing::Values("kaslr.elf", "nokaslr.elf"),
                         [](const auto& info) { return std::string(info.param).substr(0, std::string(info.param).find('.')); });

// The dump with some words replaced, or made unreadable.
class Corrupted : public MemorySource {
public:
    explicit Corrupted(MemorySource& inner) : inner_(inner) {}
    std::map<uint64_t, uint64_t> words;       // 8-byte words replaced
    std::vector<Range> holes;                 // unreadable ranges

    size_t read(uint64_t vaddr, void* buf, size_t len) override {
        for (const auto& h : holes)
            if (h.contains(vaddr)) return 0;
        if (len == 8)
            if (auto it = words.find(vaddr); it != words.end()) {
                memcpy(buf, &it->second, 8);
                return 8;
            }
        size_t n = inner_.read(vaddr, buf, len);
        for (const auto& h : holes)
            if (h.start > vaddr && h.start < vaddr + n) n = h.start - vaddr;
        for (auto it = words.lower_bound(vaddr); it != words.end() && it->first + 8 <= vaddr + n; ++it)
            memcpy(static_cast<uint8_t*>(buf) + (it->first - vaddr), &it->second, 8);
        return n;
    }

private:
    MemorySource& inner_;
};

// kaslr.elf read through Corrupted memory: real() reads the dump as it is,
// k_ and ctx_ see the changes made to mem_.
class ChangedDump : public ::testing::Test {
protected:
    void SetUp() override {
        if (dumps_dir().empty()) GTEST_SKIP() << "KQ_DUMPS/KQ_VMLINUX not set: no lab dumps";
        sys_ = &open_system("kaslr.elf");
        mem_ = std::make_unique<Corrupted>(sys_->kernel().mem());
        k_ = std::make_unique<LinuxKernel>(*mem_, sys_->vmlinux(), sys_->kernel().types(), sys_->kernel().slide());
        ctx_.emplace(SurveyContext{*k_, sys_->threads(), sys_->modules()});
    }
    uint64_t real(uint64_t addr) { return sys_->kernel().read_u64_or_throw(addr, "word of the test"); }

    LinuxSystem* sys_ = nullptr;
    std::unique_ptr<Corrupted> mem_;
    std::unique_ptr<LinuxKernel> k_;
    std::optional<SurveyContext> ctx_;
};

using SurveyBadInput = ChangedDump;

TEST_F(SurveyBadInput, CorruptListsEndInCoverageGaps) {
    // Wait queues: kq_sleep_wq's lock word looks like a wake function, so
    // its queue has no head.
    mem_->words[module_symbol(*sys_, "kq_sleep", "kq_sleep_wq")] = k_->symbol("schedule");
    // Locks: the mutex's waiter still looks linked (its prev is a fake node
    // pointing back), but past the head the list loops elsewhere.
    uint64_t head = module_symbol(*sys_, "kq_mutex", "kq_mutex_lock") + k_->off("mutex", "wait_list");
    uint64_t waiter = real(head);
    const uint64_t fake = 0xffffffff00001000ull;
    mem_->words[waiter + 8] = fake;
    mem_->words[fake] = waiter;
    mem_->words[head] = fake + 0x100;
    mem_->words[fake + 0x100] = fake + 0x200;
    mem_->words[fake + 0x200] = fake + 0x100;
    // Notifiers: kq_notifier_nb points to itself.
    uint64_t nb = module_symbol(*sys_, "kq_notifier", "kq_notifier_nb");
    mem_->words[nb + k_->off("notifier_block", "next")] = nb;
    // Open files: the sleep process's struct file is unreadable.
    uint64_t files = real(thread_named(*sys_, "sleep").task + k_->off("task_struct", "files"));
    uint64_t fdt = real(files + k_->off("files_struct", "fdt"));
    uint64_t fd = real(fdt + k_->off("fdtable", "fd"));
    uint64_t file0 = real(fd);
    mem_->holes.push_back({file0, 4096, "struct file"});

    struct Case {
        void (*provider)(const SurveyContext&, Survey&);
        const char* name;
        const char* gap;
    };
    for (const Case& c : {Case{survey_wait_queues, "wait queues", "0 candidate heads"},
                          Case{survey_locks, "locks", "list loops"},
                          Case{survey_notifiers, "notifiers", "reboot_notifier_list (loops)"},
                          Case{survey_open_files, "open files", "unreadable struct file"}}) {
        Timed r = timed(c.provider, *ctx_);
        ASSERT_NE(r.coverage(), nullptr) << c.name;
        EXPECT_EQ(r.coverage()->provider, c.name);
        EXPECT_FALSE(r.coverage()->complete) << c.name;
        EXPECT_NE(r.coverage()->gap.find(c.gap), std::string::npos) << c.name << ": " << r.coverage()->gap;
        std::printf("  %s: %s\n", c.name, r.coverage()->gap.c_str());
    }
}

// Consistent changes the lab's scenarios do not show: a wait queue entry with
// a module's wake function, and a module mutex held with nobody waiting.
using SurveyFaked = ChangedDump;

TEST_F(SurveyFaked, ModuleWakeFunctionAndHeldMutexWithoutWaiters) {
    const Thread& owner = thread_named(*sys_, "kq_mutex_owner");

    // kq_sleep's queued entry now wakes through kq_sleep_thread.
    uint64_t wq = module_symbol(*sys_, "kq_sleep", "kq_sleep_wq");
    uint64_t entry = real(wq + k_->off("wait_queue_head", "head")) - k_->off("wait_queue_entry", "entry");
    uint64_t fn = module_symbol(*sys_, "kq_sleep", "kq_sleep_thread");
    mem_->words[entry + k_->off("wait_queue_entry", "func")] = fn;
    Survey w;
    survey_wait_queues(*ctx_, w);
    EXPECT_TRUE(w.coverage.at(0).complete) << w.coverage.at(0).gap;
    EXPECT_TRUE(std::any_of(w.refs.begin(), w.refs.end(), [&](const KernelRef& r) {
        return r.kind == RefKind::wait_entry && r.func == fn && r.object == entry && r.data == wq;
    }));

    // kq_mutex_lock's wait list is empty: its waiter is no longer queued.
    uint64_t lock = module_symbol(*sys_, "kq_mutex", "kq_mutex_lock");
    uint64_t head = lock + k_->off("mutex", "wait_list");
    mem_->words[head] = head;
    mem_->words[head + 8] = head;
    Survey l;
    survey_locks(*ctx_, l);
    EXPECT_TRUE(l.coverage.at(0).complete) << l.coverage.at(0).gap;
    int n = 0;
    for (const auto& r : l.refs)
        if (r.object == lock) {
            ++n;
            EXPECT_EQ(r.detail, "mutex held by " + task_label(owner) + ", no waiters");
            EXPECT_EQ(r.tasks, std::vector<int64_t>{owner.id});
        }
    EXPECT_EQ(n, 1);
}

}  // namespace
