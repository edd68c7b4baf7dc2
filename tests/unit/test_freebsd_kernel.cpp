// The FreeBSD personality (kernel/freebsd/) over both dump forms of the
// fixture: threads, modules, stacks, every planted reference with its kind,
// symbol and thread, and the verdict. What was planted comes from the
// generator's fixture.txt, never from the code under test.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "freebsd_system_fixture.h"
#include "kernel/kernel_os.h"
#include "symbols/types.h"
#include "lab_system.h"

using namespace kq;
using namespace kq::fbsdtest;

namespace {

uint64_t hex(const std::string& s) { return std::stoull(s, nullptr, 0); }

const Thread* by_tid(const FreebsdSystem& sys, int64_t tid) {
    for (const auto& t : sys.threads())
        if (t.id == tid) return &t;
    return nullptr;
}

// The ps(1) letter of a state as fixture.txt words it.
std::string letter(const std::string& planted) {
    if (planted == "sleeping") return "D";
    if (planted == "blocked") return "L";
    if (planted == "iwait") return "W";
    return "R";  // runnable, runq, running
}

std::string function_of(const FreebsdUnwinder& unw, const Frame& f) {
    auto fi = unw.code_map().function_at(f.lookup_pc());
    return fi ? fi->name : "?";
}

const KernelRef* find_ref(const Survey& s, RefKind kind, uint64_t object) {
    for (const auto& r : s.refs)
        if (r.kind == kind && r.object == object) return &r;
    return nullptr;
}

class FreebsdPersonality : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override { KQ_NEED_FBSD_FIXTURE(); }
    FreebsdSystem& sys(const std::string& scenario = "busy") { return fbsd_system(scenario, GetParam()); }
};

}  // namespace

TEST(FreebsdKernelOs, DetectedFromTheImage) {
    KQ_NEED_FBSD_FIXTURE();
    EXPECT_EQ(detect_os(kernel_path()), KernelOs::FreeBSD);
    EXPECT_EQ(detect_os(ko_path()), KernelOs::unknown);  // a module is no kernel
    EXPECT_THROW(detect_os(kDir + "/busy/fixture.txt"), Error);
    if (kq::test::lab().present()) {
        EXPECT_EQ(detect_os(kq::test::lab().vmlinux), KernelOs::Linux);
    }
}

// Every thread of fixture.txt, with its name, state, stack and saved context.
TEST_P(FreebsdPersonality, Threads) {
    for (const std::string scenario : {"busy", "idle"}) {
        FreebsdSystem& s = sys(scenario);
        Manifest m(scenario);
        const auto planted = m.all({"thread"});
        EXPECT_EQ(s.threads().size(), planted.size()) << scenario;
        EXPECT_TRUE(s.thread_list().complete()) << s.thread_list().problems.summary();
        EXPECT_EQ(s.thread_list().procs, m.all({"proc"}).size());
        for (const auto& p : planted) {
            // thread TID VA NAME... STATE kernel|module KSTACK (names may hold spaces)
            const Thread* t = by_tid(s, std::stoll(p[1]));
            ASSERT_NE(t, nullptr) << p[1];
            const size_t n = p.size();
            EXPECT_EQ(t->task, hex(p[2]));
            EXPECT_EQ(t->name.rfind(p[3], 0), 0u) << t->name;
            EXPECT_EQ(t->state, letter(p[n - 3])) << t->name;
            EXPECT_EQ(t->on_cpu, p[n - 3] == "running") << t->name;
            EXPECT_EQ(t->stack_base, hex(p[n - 1]));
            EXPECT_EQ(t->stack_size, 4 * kFreebsdPageSize);
            const auto st = m.all({"stack", p[1]});
            ASSERT_EQ(st.size(), 1u);
            EXPECT_EQ(t->regs.get(Reg::rip), hex(st[0][2])) << t->name;
            EXPECT_EQ(t->regs.get(Reg::rsp), hex(st[0][3])) << t->name;
        }
        // The running threads: the dump's writer on CPU 0, CPU 1's idle thread.
        const Thread* writer = by_tid(s, static_cast<int64_t>(m.num({"dumptid"}, 1)));
        ASSERT_NE(writer, nullptr);
        EXPECT_TRUE(writer->on_cpu);
        EXPECT_EQ(writer->cpu, 0);
        EXPECT_EQ(s.kernel().cpus(), (std::vector<int>{0, 1}));
        EXPECT_EQ(s.release(), "14.1-RELEASE");
    }
}

// kq_fbsd.ko where it was loaded, its sections, its .ko found.
TEST_P(FreebsdPersonality, Modules) {
    for (const std::string scenario : {"busy", "idle"}) {
        FreebsdSystem& s = sys(scenario);
        Manifest m(scenario);
        EXPECT_TRUE(s.module_list().complete()) << s.module_list().problems.summary();
        ASSERT_EQ(s.modules().size(), 1u);  // the kernel is not a module
        EXPECT_EQ(s.module_list().kernel.filename, "kernel");
        const Module* mod = s.module("kq_fbsd");
        ASSERT_NE(mod, nullptr);
        EXPECT_EQ(s.module("kq_fbsd.ko"), mod);
        EXPECT_EQ(s.module("nosuch"), nullptr);
        const LinkerFileInfo& f = s.module_list().files[0];
        EXPECT_EQ(f.filename, "kq_fbsd.ko");
        EXPECT_EQ(f.address, m.num({"module", "kq_fbsd.ko"}, 2));
        EXPECT_EQ(f.size, m.num({"module", "kq_fbsd.ko"}, 3));
        EXPECT_EQ(f.declared, (std::vector<std::string>{"kq_fbsd"}));
        EXPECT_EQ(mod->state, "Live");
        EXPECT_EQ(mod->refcount, 0);
        EXPECT_TRUE(mod->holders.empty());
        EXPECT_EQ(mod->ko_path, ko_path());
        const auto secs = m.all({"section", "kq_fbsd.ko"});
        ASSERT_EQ(mod->sections.size(), secs.size());
        for (size_t i = 0; i < secs.size(); ++i) {
            EXPECT_EQ(mod->sections[i].name, secs[i][2]);
            EXPECT_EQ(mod->sections[i].addr, hex(secs[i][3]));
            EXPECT_EQ(mod->ranges[i].size, hex(secs[i][4]));
            EXPECT_EQ(mod->ranges[i].what, secs[i][2] == ".text" ? "text"
                                           : secs[i][2] == ".data" || secs[i][2] == ".bss" ? "data"
                                                                                           : "rodata");
            EXPECT_TRUE(mod->contains(hex(secs[i][3])));
        }
        EXPECT_FALSE(mod->contains(f.address + f.size));
    }
}

// Every stack is the planted call chain, innermost first, down to its base.
TEST_P(FreebsdPersonality, Stacks) {
    FreebsdSystem& s = sys();
    FreebsdUnwinder unw(s.kernel(), s.modules());
    Manifest m;
    for (const Thread& t : s.threads()) {
        const auto st = m.all({"stack", std::to_string(t.id)});
        ASSERT_EQ(st.size(), 1u);
        // stack TID RIP RSP outermost ... callee-of-the-saved-pc
        std::vector<std::string> want(st[0].begin() + 4, st[0].end() - 1);
        std::reverse(want.begin(), want.end());
        const auto frames = unw.unwind(t);
        std::vector<std::string> got;
        for (const auto& f : frames) got.push_back(function_of(unw, f));
        EXPECT_EQ(got, want) << t.name;
        ASSERT_FALSE(frames.empty());
        EXPECT_TRUE(reached_base(frames)) << t.name << ": " << frames.back().stop_text();
        // Below an interrupt's entry, the interrupted code at its exact pc
        // (from the trap frame), not a return address.
        for (size_t i = 0; i + 1 < frames.size(); ++i)
            if (got[i] == "Xtimerint") {
                EXPECT_FALSE(frames[i + 1].return_address) << t.name;
            }
        const bool from_user = want.back() == "fast_syscall_common";
        EXPECT_EQ(frames.back().stop, from_user ? StopReason::user_mode : StopReason::end_of_stack) << t.name;
    }
}

// busy/: every planted use, as the providers report it.
TEST_P(FreebsdPersonality, PlantedReferences) {
    FreebsdSystem& s = sys();
    Manifest m;
    const Survey sv = s.survey();
    for (const auto& c : sv.coverage) EXPECT_TRUE(c.complete) << c.provider << ": " << c.gap;
    auto tid = [&](const char* name) {
        for (const auto& t : s.threads())
            if (t.name == name) return t.id;
        return int64_t(-1);
    };

    // The sleeper's channel, in the module's data.
    const KernelRef* chan = find_ref(sv, RefKind::wait_queue, m.num({"channel"}, 1));
    ASSERT_NE(chan, nullptr);
    EXPECT_EQ(chan->tasks, (std::vector<int64_t>{tid("kq_fbsd_sleep")}));
    EXPECT_NE(chan->detail.find("kqslp"), std::string::npos) << chan->detail;

    // The mutex: owned by the worker, the locker blocked in its turnstile.
    const KernelRef* mtx = find_ref(sv, RefKind::lock, m.num({"mutex"}, 1));
    ASSERT_NE(mtx, nullptr);
    EXPECT_EQ(mtx->subject, "sleep mutex kq_fbsd_mtx");
    EXPECT_EQ(mtx->tasks, (std::vector<int64_t>{static_cast<int64_t>(m.num({"owner"}, 2)), tid("kq_fbsd_lock")}));

    // The sx lock, held by the sleeper, no waiters.
    const KernelRef* sx = find_ref(sv, RefKind::lock, m.num({"sx"}, 1));
    ASSERT_NE(sx, nullptr);
    EXPECT_EQ(sx->subject, "sx kq_fbsd_sx");
    EXPECT_EQ(sx->tasks, (std::vector<int64_t>{static_cast<int64_t>(m.num({"sx_owner"}, 2))}));

    // Callouts: the module's on CPU 0, thread0's sleep timeout on CPU 1.
    for (const auto& c : m.all({"callout"})) {
        const KernelRef* r = find_ref(sv, RefKind::timer, hex(c[2]));
        ASSERT_NE(r, nullptr) << c[2];
        EXPECT_EQ(r->func, hex(c[4]));
        EXPECT_EQ(r->data, hex(c[6]));
        EXPECT_EQ(r->subject, "CPU " + c[1] + " callout wheel");
    }
    // Tasks: the module's on taskqueue_thread, a kernel one on a private queue.
    for (const auto& c : m.all({"task"})) {
        const KernelRef* r = find_ref(sv, RefKind::work, hex(c[1]));
        ASSERT_NE(r, nullptr) << c[1];
        EXPECT_EQ(r->func, hex(c[3]));
    }
    // Event handlers: the kernel's and the module's on shutdown_pre_sync.
    for (const auto& c : m.all({"eventhandler"})) {
        const KernelRef* r = find_ref(sv, RefKind::notifier, hex(c[2]));
        ASSERT_NE(r, nullptr) << c[2];
        EXPECT_EQ(r->func, hex(c[4]));
        EXPECT_EQ(r->subject, "eventhandler " + c[1]);
    }
    EXPECT_EQ(sv.refs.size(), 5 /* channels */ + 2 /* locks */ + 2 + 2 + 2);
}

// busy/: the report names every use with its kind, symbol and thread: UNSAFE.
TEST_P(FreebsdPersonality, BusyIsUnsafe) {
    FreebsdSystem& s = sys();
    const Report r = inuse_report(s, *s.module("kq_fbsd"));
    EXPECT_EQ(r.verdict, Verdict::unsafe);
    for (const auto& c : r.coverage) EXPECT_TRUE(c.complete) << c.provider << ": " << c.gap;
    std::map<std::string, std::string> thread_of;
    for (const auto& t : s.threads()) thread_of[std::to_string(t.id)] = t.name;
    std::multiset<std::string> got;
    for (const auto& e : r.evidence) {
        EXPECT_EQ(e.severity, Severity::blocking) << e.kind << " " << e.symbol;
        std::string who;
        for (auto t : e.tasks) who += " " + thread_of[std::to_string(t)];
        got.insert(e.kind + " " + e.symbol + who);
    }
    const std::multiset<std::string> want = {
        "thread_frame kq_fbsd_sleeper+0x61 [kq_fbsd] kq_fbsd_sleep",
        "thread_frame kq_fbsd_worker+0x21 [kq_fbsd] kq_fbsd_work",
        "thread_frame kq_fbsd_locker+0x4c [kq_fbsd] kq_fbsd_lock",
        "wait_queue kq_fbsd_chan [kq_fbsd] kq_fbsd_sleep",
        "lock kq_fbsd_sc [kq_fbsd] kq_fbsd_work kq_fbsd_lock",
        "lock kq_fbsd_sc+0x20 [kq_fbsd] kq_fbsd_sleep",
        "timer kq_fbsd_tick [kq_fbsd]",
        "work kq_fbsd_task [kq_fbsd]",
        "notifier kq_fbsd_shutdown [kq_fbsd]",
    };
    // Offsets inside functions depend on the compiler: compare the names.
    auto strip = [](std::multiset<std::string> s) {
        std::multiset<std::string> o;
        for (auto x : s) {
            if (x.rfind("thread_frame", 0) == 0) x.erase(x.find('+'), x.find(' ', x.find('+')) - x.find('+'));
            o.insert(x);
        }
        return o;
    };
    EXPECT_EQ(strip(got), strip(want));
}

// idle/: the module loaded but unused: SAFE with every provider complete.
TEST_P(FreebsdPersonality, IdleIsSafe) {
    FreebsdSystem& s = sys("idle");
    const Report r = inuse_report(s, *s.module("kq_fbsd"));
    for (const auto& e : r.evidence) ADD_FAILURE() << e.kind << " " << e.subject << " " << e.symbol;
    for (const auto& c : r.coverage) EXPECT_TRUE(c.complete) << c.provider << ": " << c.gap;
    EXPECT_EQ(r.verdict, Verdict::safe);
    EXPECT_GE(r.coverage.size(), 9u);
}

INSTANTIATE_TEST_SUITE_P(Forms, FreebsdPersonality, ::testing::Values("minidump", "elf"));

// What runs at dump time also counts: a callout a CPU is running and a task
// a taskqueue thread is running, written into the idle kernel.
TEST(FreebsdRunning, CalloutAndTaskMakeIdleUnsafe) {
    KQ_NEED_FBSD_FIXTURE();
    auto dump = Dump::open(minidump_path("idle"));
    PatchedMemory mem(*dump);
    auto types = Types::open(kernel_path());
    auto ko_types = Types::open(ko_path());
    auto ko = ElfImage::open(ko_path());
    Manifest m("idle");
    auto off = [&](const char* t, const char* member) { return types->offset_or_throw(t, member); };
    const uint64_t sc = m.num({"mutex"}, 1);  // the softc starts with its mutex
    const uint64_t base = m.num({"section", "kq_fbsd.ko", ".text"}, 3);
    auto text = [&](const char* fn) { return base + ko->symbol(fn)->value; };

    // CPU 0 runs the module's callout directly from the clock interrupt.
    const uint64_t cc = m.num({"cc_cpu", "0"}, 2);
    const uint64_t co = sc + ko_types->offset_or_throw("kq_fbsd_softc", "sc_callout");
    const uint64_t exec1 = cc + off("callout_cpu", "cc_exec_entity[1]");
    mem.put_u64(exec1 + off("cc_exec", "cc_curr"), co);
    mem.put_u64(exec1 + off("cc_exec", "cc_last_func"), text("kq_fbsd_tick"));
    mem.put_u64(exec1 + off("cc_exec", "cc_last_arg"), sc);

    // The thread taskqueue's thread runs the module's task (its busy entry
    // on the bottom of thread0's stack, unused).
    uint64_t tq = 0;
    for (const auto& q : m.all({"taskqueue"}))
        if (q[2] == "thread") tq = std::stoull(q[1], nullptr, 0);
    const uint64_t task = sc + ko_types->offset_or_throw("kq_fbsd_softc", "sc_task");
    const uint64_t tb = hex(m.all({"thread"}).front().back()) + 0x100;  // thread0's kstack
    mem.put_u64(tb + off("taskqueue_busy", "tb_running"), task);
    mem.put_u64(tb + off("taskqueue_busy", "tb_link.tqe_next"), 0);
    mem.put_u64(tq + off("taskqueue", "tq_active.tqh_first"), tb);

    auto sys = FreebsdSystem::open_memory(mem, kernel_path(), open_options());
    const Report r = inuse_report(*sys, *sys->module("kq_fbsd"));
    EXPECT_EQ(r.verdict, Verdict::unsafe);
    std::set<std::string> got;
    for (const auto& e : r.evidence) got.insert(e.kind + " " + e.symbol + ": " + e.detail);
    EXPECT_EQ(got, (std::set<std::string>{
                       "timer kq_fbsd_tick [kq_fbsd]: calls into the module; running now from the clock interrupt",
                       "work kq_fbsd_task [kq_fbsd]: calls into the module; running now",
                   }));
}

// Both forms are the same kernel: the same threads, modules and references.
TEST(FreebsdKernelForms, Agree) {
    KQ_NEED_FBSD_FIXTURE();
    for (const std::string scenario : {"busy", "idle"}) {
        FreebsdSystem& a = fbsd_system(scenario, "minidump");
        FreebsdSystem& b = fbsd_system(scenario, "elf");
        ASSERT_EQ(a.threads().size(), b.threads().size());
        for (size_t i = 0; i < a.threads().size(); ++i) {
            EXPECT_EQ(a.threads()[i].id, b.threads()[i].id);
            EXPECT_EQ(a.threads()[i].regs.get(Reg::rip), b.threads()[i].regs.get(Reg::rip));
        }
        const Survey sa = a.survey(), sb = b.survey();
        ASSERT_EQ(sa.refs.size(), sb.refs.size());
        for (size_t i = 0; i < sa.refs.size(); ++i) {
            EXPECT_EQ(sa.refs[i].object, sb.refs[i].object);
            EXPECT_EQ(sa.refs[i].func, sb.refs[i].func);
            EXPECT_EQ(sa.refs[i].detail, sb.refs[i].detail);
        }
    }
}
