// The FreeBSD fixture as a FreeBSD personality will read it: the kernel
// image's DWARF (symbols/ Types) gives FreeBSD's layouts, its symbol table
// the planted addresses, and following the kernel's lists through either
// dump form finds what the generator planted.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>

#include "freebsd_fixture.h"
#include "symbols/types.h"
#include "vmcore/freebsd_dump.h"

namespace fbsd {
#include "corefiles/freebsd/fbsd_types.h"
}

using namespace kq::fbsdtest;

namespace {

kq::Types& types() {
    static auto t = kq::Types::open(kernel_path());
    return *t;
}

const kq::ElfImage& kernel() {
    static auto k = kq::ElfImage::open(kernel_path());
    return *k;
}

uint64_t sym(const char* name) {
    const kq::ElfSymbol* s = kernel().symbol(name);
    if (!s) throw std::runtime_error(std::string("no symbol ") + name);
    return s->value;
}

std::optional<uint64_t> u(size_t v) { return uint64_t(v); }

// Reads through a dump with layouts from the DWARF only.
struct Reader {
    kq::Dump& d;
    uint64_t ptr(uint64_t base, const char* type, const char* member) {
        auto v = d.read_u64(base + types().offset_or_throw(type, member));
        if (!v) throw std::runtime_error(std::string("unreadable ") + type + "." + member);
        return *v;
    }
    int32_t i32(uint64_t base, const char* type, const char* member) {
        auto v = d.read_as<int32_t>(base + types().offset_or_throw(type, member));
        if (!v) throw std::runtime_error(std::string("unreadable ") + type + "." + member);
        return *v;
    }
    std::string str(uint64_t base, const char* type, const char* member) {
        return d.read_cstr(base + types().offset_or_throw(type, member), 64);
    }
};

struct ThreadSeen {
    uint64_t va;
    std::string name;
    uint64_t wchan, blocked;
    int state, oncpu;
};

// allproc -> p_list -> p_threads -> td_plist, as a personality walks them.
std::map<int32_t, ThreadSeen> threads(kq::Dump& d) {
    Reader r{d};
    std::map<int32_t, ThreadSeen> seen;
    for (uint64_t p = *d.read_u64(sym("allproc")); p; p = r.ptr(p, "proc", "p_list.le_next")) {
        for (uint64_t td = r.ptr(p, "proc", "p_threads.tqh_first"); td; td = r.ptr(td, "thread", "td_plist.tqe_next")) {
            EXPECT_EQ(r.ptr(td, "thread", "td_proc"), p);
            seen[r.i32(td, "thread", "td_tid")] = {td, r.str(td, "thread", "td_name"), r.ptr(td, "thread", "td_wchan"),
                                                   r.ptr(td, "thread", "td_blocked"), r.i32(td, "thread", "td_state"),
                                                   r.i32(td, "thread", "td_oncpu")};
        }
    }
    return seen;
}

std::vector<std::unique_ptr<kq::Dump>> both(const std::string& scenario) {
    std::vector<std::unique_ptr<kq::Dump>> d;
    d.push_back(kq::Dump::open(minidump_path(scenario)));
    d.push_back(kq::Dump::open(elf_path(scenario), kernel_options()));
    return d;
}

}  // namespace

// FreeBSD's member names, at the offsets the generator laid them out at.
TEST(FreebsdFixture, DwarfLayouts) {
    KQ_NEED_FBSD_FIXTURE();
    kq::Types& t = types();
    EXPECT_EQ(t.offset("thread", "td_wchan"), u(offsetof(fbsd::thread, td_wchan)));
    EXPECT_EQ(t.offset("thread", "td_tid"), u(offsetof(fbsd::thread, td_tid)));
    EXPECT_EQ(t.offset("thread", "td_name"), u(offsetof(fbsd::thread, td_name)));
    EXPECT_EQ(t.offset("thread", "td_pcb"), u(offsetof(fbsd::thread, td_pcb)));
    EXPECT_EQ(t.offset("thread", "td_kstack"), u(offsetof(fbsd::thread, td_kstack)));
    EXPECT_EQ(t.offset("thread", "td_kstack_pages"), u(offsetof(fbsd::thread, td_kstack_pages)));
    EXPECT_EQ(t.offset("thread", "td_blocked"), u(offsetof(fbsd::thread, td_blocked)));
    EXPECT_EQ(t.offset("thread", "td_lockname"), u(offsetof(fbsd::thread, td_lockname)));
    EXPECT_EQ(t.offset("thread", "td_oncpu"), u(offsetof(fbsd::thread, td_oncpu)));
    EXPECT_EQ(t.offset("thread", "td_plist.tqe_next"), u(offsetof(fbsd::thread, td_plist)));
    EXPECT_EQ(t.offset("thread", "td_slpcallout.c_func"), u(offsetof(fbsd::thread, td_slpcallout.c_func)));
    EXPECT_EQ(t.size("thread"), u(sizeof(fbsd::thread)));
    EXPECT_EQ(t.offset("proc", "p_threads"), u(offsetof(fbsd::proc, p_threads)));
    EXPECT_EQ(t.offset("proc", "p_comm"), u(offsetof(fbsd::proc, p_comm)));
    EXPECT_EQ(t.offset("pcb", "pcb_rip"), u(offsetof(fbsd::pcb, pcb_rip)));
    EXPECT_EQ(t.offset("pcb", "pcb_rsp"), u(offsetof(fbsd::pcb, pcb_rsp)));
    EXPECT_EQ(t.offset("pcb", "pcb_r12"), u(offsetof(fbsd::pcb, pcb_r12)));
    EXPECT_EQ(t.size("pcb"), u(sizeof(fbsd::pcb)));
    EXPECT_EQ(t.offset("linker_file", "filename"), u(offsetof(fbsd::linker_file, filename)));
    EXPECT_EQ(t.offset("linker_file", "address"), u(offsetof(fbsd::linker_file, address)));
    EXPECT_EQ(t.offset("linker_file", "link.tqe_next"), u(offsetof(fbsd::linker_file, link)));
    EXPECT_EQ(t.offset("elf_file", "progtab"), u(offsetof(fbsd::elf_file, progtab)));
    EXPECT_EQ(t.offset("module", "name"), u(offsetof(fbsd::module, name)));
    EXPECT_EQ(t.offset("callout", "c_func"), u(offsetof(fbsd::callout, c_func)));
    EXPECT_EQ(t.offset("callout", "c_time"), u(offsetof(fbsd::callout, c_time)));
    EXPECT_EQ(t.offset("callout_cpu", "cc_callwheel"), u(offsetof(fbsd::callout_cpu, cc_callwheel)));
    EXPECT_EQ(t.offset("callout_cpu", "cc_exec_entity[1].cc_curr"),
              u(offsetof(fbsd::callout_cpu, cc_exec_entity[1].cc_curr)));
    EXPECT_EQ(t.offset("mtx", "mtx_lock"), u(offsetof(fbsd::mtx, mtx_lock)));
    EXPECT_EQ(t.offset("mtx", "lock_object.lo_name"), u(offsetof(fbsd::mtx, lock_object.lo_name)));
    EXPECT_EQ(t.offset("turnstile", "ts_lockobj"), u(offsetof(fbsd::turnstile, ts_lockobj)));
    EXPECT_EQ(t.enumerator("TDS_RUNNING"), 4);
    EXPECT_EQ(t.enumerator("PRS_NORMAL"), 1);
}

// The symbols a FreeBSD kernel.debug has, at kernel addresses.
TEST(FreebsdFixture, KernelSymbols) {
    KQ_NEED_FBSD_FIXTURE();
    const kq::ElfImage& k = kernel();
    EXPECT_FALSE(k.relocatable());
    EXPECT_EQ(sym("kernbase"), kKernbase);
    for (const char* name : {"allproc", "linker_files", "modules", "pcpu_entry_cc_cpu", "dpcpu_off", "ostype",
                             "version", "KPML4phys", "dumppcb", "dumptid", "stoppcbs", "msgbufp", "callwheelsize",
                             "mp_maxid", "cpuid_to_pcpu"})
        EXPECT_GE(sym(name), kKernbase + 0x200000) << name;
    // The saved pc of a sleeping thread is inside sched_switch.
    const auto stacks = Manifest().all({"stack"});
    ASSERT_FALSE(stacks.empty());
    const kq::ElfSymbol* at = k.symbol_at(std::stoull(stacks[0][2], nullptr, 0));
    ASSERT_NE(at, nullptr);
    EXPECT_EQ(at->name, "sched_switch");

    auto ko = kq::ElfImage::open(ko_path());
    EXPECT_TRUE(ko->relocatable());
    EXPECT_NE(ko->symbol("kq_fbsd_sleeper"), nullptr);
    auto kot = kq::Types::open(ko_path());
    EXPECT_TRUE(kot->offset("kq_fbsd_softc", "sc_callout.c_func"));
}

// Threads found through allproc, the same in both forms, as planted.
TEST(FreebsdFixture, ThreadsThroughAllproc) {
    KQ_NEED_FBSD_FIXTURE();
    for (const std::string scenario : {"busy", "idle"}) {
        Manifest m(scenario);
        const auto planted = m.all({"thread"});
        for (auto& d : both(scenario)) {
            const auto seen = threads(*d);
            ASSERT_EQ(seen.size(), planted.size()) << scenario << " " << d->format();
            for (const auto& p : planted) {
                auto it = seen.find(std::stoi(p[1]));
                ASSERT_NE(it, seen.end()) << p[1];
                EXPECT_EQ(it->second.va, std::stoull(p[2], nullptr, 0));
                EXPECT_EQ(it->second.name.rfind(p[3], 0), 0u) << it->second.name;
            }
            std::set<std::string> names;
            for (const auto& [tid, t] : seen) names.insert(t.name);
            EXPECT_EQ(names.count("kq_fbsd_sleep"), scenario == "busy" ? 1u : 0u);
            EXPECT_EQ(names.count("swapper"), 1u);
        }
    }
}

// The busy scenario's uses of the module, read back by DWARF layout.
TEST(FreebsdFixture, PlantedUses) {
    KQ_NEED_FBSD_FIXTURE();
    Manifest m;
    const uint64_t base = m.num({"module", "kq_fbsd.ko"}, 2), size = m.num({"module", "kq_fbsd.ko"}, 3);
    auto in_module = [&](uint64_t a) { return a >= base && a < base + size; };
    for (auto& d : both("busy")) {
        Reader r{*d};
        const auto seen = threads(*d);

        // linker_files: the kernel, then the module where it was loaded.
        std::vector<std::string> files;
        for (uint64_t lf = *d->read_u64(sym("linker_files")); lf; lf = r.ptr(lf, "linker_file", "link.tqe_next")) {
            files.push_back(d->read_cstr(r.ptr(lf, "linker_file", "filename")));
            if (files.back() == "kq_fbsd.ko") {
                EXPECT_EQ(r.ptr(lf, "linker_file", "address"), base);
            }
        }
        EXPECT_EQ(files, (std::vector<std::string>{"kernel", "kq_fbsd.ko"}));

        // A thread asleep on a channel in the module.
        int asleep = 0, blocked = 0;
        for (const auto& [tid, t] : seen) {
            asleep += in_module(t.wchan);
            if (t.blocked) {
                ++blocked;
                EXPECT_TRUE(in_module(r.ptr(t.blocked, "turnstile", "ts_lockobj")));
            }
        }
        EXPECT_EQ(asleep, 1);
        EXPECT_EQ(blocked, 1);

        // The module's mutex, owned by a thread.
        const uint64_t mtx = m.num({"mutex"}, 1);
        const uint64_t owner = r.ptr(mtx, "mtx", "mtx_lock") & ~uint64_t(7);
        EXPECT_EQ(owner, seen.at(int32_t(m.num({"owner"}, 2))).va);
        EXPECT_EQ(d->read_cstr(r.ptr(mtx, "mtx", "lock_object.lo_name")), "kq_fbsd_mtx");

        // CPU 0's callout wheel: the module's callout in its bucket.
        const uint64_t cc = sym("pcpu_entry_cc_cpu") + *d->read_u64(sym("dpcpu_off"));
        EXPECT_EQ(cc, m.num({"cc_cpu", "0"}, 2));
        const uint64_t wheel = r.ptr(cc, "callout_cpu", "cc_callwheel");
        const auto co = m.all({"callout", "0"});
        ASSERT_EQ(co.size(), 1u);
        const uint64_t bucket = std::stoull(co[0][8]);
        const uint64_t first = *d->read_u64(wheel + bucket * 8);
        EXPECT_EQ(first, std::stoull(co[0][2], nullptr, 0));
        EXPECT_TRUE(in_module(r.ptr(first, "callout", "c_func")));

        // The panicking thread's registers are in dumppcb.
        const int32_t dumptid = *d->read_as<int32_t>(sym("dumptid"));
        EXPECT_EQ(dumptid, int32_t(m.num({"dumptid"}, 1)));
        EXPECT_EQ(seen.at(dumptid).state, 4);  // TDS_RUNNING
        EXPECT_EQ(seen.at(dumptid).oncpu, 0);
        const uint64_t pc = r.ptr(sym("dumppcb"), "pcb", "pcb_rip");
        const kq::ElfSymbol* fn = kernel().symbol_at(pc);
        ASSERT_NE(fn, nullptr);
        EXPECT_EQ(fn->name, "doadump");
    }
}
