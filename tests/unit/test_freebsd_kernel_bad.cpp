// Bad input to the FreeBSD personality: cycles in the kernel's lists,
// unreadable threads and stacks, a kernel image of another build. Each gives
// a gap in coverage (so never SAFE) or a clear error, never a hang.
#include <gtest/gtest.h>


#include "freebsd_system_fixture.h"
#include "symbols/types.h"

using namespace kq;
using namespace kq::fbsdtest;

namespace {

Types& types() {
    static auto t = Types::open(kernel_path());
    return *t;
}

uint64_t sym(const char* name) {
    static auto k = ElfImage::open(kernel_path());
    return k->symbol(name)->value;
}

uint64_t off(const char* type, const char* member) { return types().offset_or_throw(type, member); }

// The idle scenario's minidump, with patches.
struct FreebsdBadInput : ::testing::Test {
    void SetUp() override {
        KQ_NEED_FBSD_FIXTURE();
        dump = Dump::open(minidump_path("idle"));
        mem = std::make_unique<PatchedMemory>(*dump);
    }
    std::unique_ptr<FreebsdSystem> open() { return FreebsdSystem::open_memory(*mem, kernel_path(), open_options()); }
    uint64_t u64(uint64_t a) { return *dump->read_u64(a); }
    // The elements of a sys/queue.h list, first pointer at `head`.
    std::vector<uint64_t> elements(uint64_t head, uint64_t next) {
        std::vector<uint64_t> v;
        for (uint64_t e = u64(head); e; e = u64(e + next)) v.push_back(e);
        return v;
    }
    const Coverage* coverage(const Report& r, const std::string& provider) {
        for (const auto& c : r.coverage)
            if (c.provider == provider) return &c;
        return nullptr;
    }
    // kmod inuse kq_fbsd on the patched kernel: not SAFE, and `provider`
    // names the gap.
    void expect_gap(FreebsdSystem& s, const std::string& provider, const std::string& words) {
        const Module* m = s.module("kq_fbsd");
        ASSERT_NE(m, nullptr);
        const Report r = inuse_report(s, *m);
        const Coverage* c = coverage(r, provider);
        ASSERT_NE(c, nullptr) << provider;
        EXPECT_FALSE(c->complete) << provider;
        EXPECT_NE(c->gap.find(words), std::string::npos) << c->gap;
        EXPECT_EQ(r.verdict, Verdict::unknown);
    }

    std::unique_ptr<Dump> dump;
    std::unique_ptr<PatchedMemory> mem;
};

}  // namespace

// The fixture unpatched is SAFE through this path too.
TEST_F(FreebsdBadInput, UnpatchedIsSafe) {
    auto s = open();
    EXPECT_EQ(inuse_report(*s, *s->module("kq_fbsd")).verdict, Verdict::safe);
}

TEST_F(FreebsdBadInput, AllprocCycle) {
    auto procs = elements(sym("allproc"), off("proc", "p_list.le_next"));
    ASSERT_GE(procs.size(), 3u);
    mem->put_u64(procs.back() + off("proc", "p_list.le_next"), procs[1]);
    auto s = open();
    EXPECT_FALSE(s->thread_list().complete());
    EXPECT_EQ(s->thread_list().procs, procs.size());
    expect_gap(*s, "thread list", "allproc: list loops");
}

TEST_F(FreebsdBadInput, ThreadListCycle) {
    const uint64_t proc0 = sym("proc0");
    auto tds = elements(proc0 + off("proc", "p_threads.tqh_first"), off("thread", "td_plist.tqe_next"));
    ASSERT_GE(tds.size(), 2u);
    mem->put_u64(tds.back() + off("thread", "td_plist.tqe_next"), tds.front());
    auto s = open();
    expect_gap(*s, "thread list", "list loops");
}

TEST_F(FreebsdBadInput, UnreadableThread) {
    // init's thread list leads to the guard page below the first kernel stack.
    Manifest m("idle");
    const uint64_t guard = m.num({"kstack_guard"}, 1);
    ASSERT_FALSE(dump->read_u64(guard));
    uint64_t init = 0;
    for (const auto& p : m.all({"proc"}))
        if (p[3] == "init") init = std::stoull(p[1], nullptr, 0);
    ASSERT_NE(init, 0u);
    mem->put_u64(init + off("proc", "p_threads.tqh_first"), guard + 0x100);
    auto s = open();
    EXPECT_EQ(s->threads().size(), m.all({"thread"}).size() - 1);
    expect_gap(*s, "thread list", "is unreadable");
}

TEST_F(FreebsdBadInput, UnreadableStack) {
    // A thread whose kernel stack pointer is wrong: its unwind cannot start.
    Manifest m("idle");
    const auto t = m.all({"thread"}).front();
    mem->put_u64(std::stoull(t[2], nullptr, 0) + off("thread", "td_kstack"), m.num({"kstack_guard"}, 1));
    auto s = open();
    expect_gap(*s, "threads", "did not reach their base");
}

// CPU 1's idle thread was running, but the CPU saved no context.
TEST_F(FreebsdBadInput, RunningThreadWithoutContext) {
    const uint64_t pcb1 = sym("stoppcbs") + types().size_or_throw("pcb");
    mem->put_u64(pcb1 + off("pcb", "pcb_rip"), 0);
    mem->put_u64(pcb1 + off("pcb", "pcb_rsp"), 0);
    auto s = open();
    expect_gap(*s, "threads", "did not reach their base");
}

// A saved pc that is no kernel address is bad data, not user mode.
TEST_F(FreebsdBadInput, SavedPcNotKernelCode) {
    const uint64_t pcb1 = sym("stoppcbs") + types().size_or_throw("pcb");
    mem->put_u64(pcb1 + off("pcb", "pcb_rip"), 0x401000);
    auto s = open();
    expect_gap(*s, "threads", "did not reach their base");
}

// A thread created but never run resumes at fork_trampoline itself: its
// stack is complete at once.
TEST_F(FreebsdBadInput, NeverRunThreadIsComplete) {
    Manifest m("idle");
    const auto t = m.all({"thread", std::to_string(m.num({"dumptid"}, 1) + 1)});
    ASSERT_EQ(t.size(), 1u);
    const uint64_t td = std::stoull(t[0][2], nullptr, 0);
    const uint64_t pcb = u64(td + off("thread", "td_pcb"));
    mem->put_u64(pcb + off("pcb", "pcb_rip"), sym("fork_trampoline"));
    mem->put_u64(pcb + off("pcb", "pcb_rsp"), u64(td + off("thread", "td_frame")) - 8);
    auto s = open();
    const Report r = inuse_report(*s, *s->module("kq_fbsd"));
    EXPECT_EQ(r.verdict, Verdict::safe);
    FreebsdUnwinder unw(s->kernel(), s->modules());
    for (const Thread& th : s->threads())
        if (th.task == td) {
            const auto frames = unw.unwind(th);
            ASSERT_EQ(frames.size(), 1u);
            EXPECT_EQ(frames[0].stop, StopReason::end_of_stack);
            EXPECT_FALSE(frames[0].return_address);
        }
}

TEST_F(FreebsdBadInput, LinkerFilesCycle) {
    auto files = elements(sym("linker_files"), off("linker_file", "link.tqe_next"));
    ASSERT_EQ(files.size(), 2u);
    mem->put_u64(files.back() + off("linker_file", "link.tqe_next"), files.front());
    auto s = open();
    EXPECT_FALSE(s->module_list().complete());
    expect_gap(*s, "linker files", "linker_files: list loops");
}

TEST_F(FreebsdBadInput, CalloutBucketCycle) {
    Manifest m("idle");
    const auto c = m.all({"callout"});
    ASSERT_EQ(c.size(), 1u);
    const uint64_t co = std::stoull(c[0][2], nullptr, 0);
    mem->put_u64(co + off("callout", "c_links.le.le_next"), co);
    auto s = open();
    expect_gap(*s, "callouts", "list loops");
}

TEST_F(FreebsdBadInput, ImplausibleCallwheel) {
    const uint32_t huge = 1u << 30;
    mem->put_bytes(sym("callwheelsize"), &huge, 4);
    auto s = open();
    expect_gap(*s, "callouts", "callwheelsize");
}

TEST_F(FreebsdBadInput, EventhandlerCycle) {
    Manifest m("idle");
    const auto e = m.all({"eventhandler"});
    ASSERT_EQ(e.size(), 1u);
    const uint64_t entry = std::stoull(e[0][2], nullptr, 0);
    mem->put_u64(entry + off("eventhandler_entry", "ee_link.tqe_next"), entry);
    auto s = open();
    expect_gap(*s, "eventhandlers", "list loops");
}

TEST_F(FreebsdBadInput, TaskqueueCycle) {
    Manifest m("idle");
    const auto t = m.all({"task"});
    ASSERT_EQ(t.size(), 1u);
    const uint64_t task = std::stoull(t[0][1], nullptr, 0);
    mem->put_u64(task + off("task", "ta_link.stqe_next"), task);
    auto s = open();
    expect_gap(*s, "taskqueues", "list loops");
}

// Another kernel's image: refused before anything is read with its layouts.
TEST_F(FreebsdBadInput, OtherKernel) {
    const char other[] = "FreeBSD 13.2-RELEASE releng/13.2-n254617 GENERIC amd64\n";
    mem->put_bytes(sym("version"), other, sizeof other);
    try {
        open();
        FAIL() << "opened";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
    }
}

// Not FreeBSD's dump, not a dump: one clear line.
TEST_F(FreebsdBadInput, NotAFreebsdDump) {
    EXPECT_THROW(FreebsdSystem::open_dump(kernel_path(), kDir + "/busy/fixture.txt", open_options()), Error);
    EXPECT_THROW(FreebsdSystem::open_dump(ko_path(), minidump_path("idle"), open_options()), Error);
}
