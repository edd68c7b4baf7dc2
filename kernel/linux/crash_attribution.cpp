#include "kernel/linux/crash_attribution.h"

#include <elf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "kernel/linux/crash_ko_layout.h"
#include "kernel/linux/ko_locator.h"
#include "kernel/linux/providers.h"

namespace kq {

const char* to_string(StaleRef::Expect e) {
    switch (e) {
        case StaleRef::Expect::function_entry: return "function_entry";
        case StaleRef::Expect::return_address: return "return_address";
        case StaleRef::Expect::code: return "code";
        case StaleRef::Expect::any: return "any";
    }
    return "?";
}

const char* to_string(Attribution::Kind k) {
    switch (k) {
        case Attribution::Kind::unload: return "unload";
        case Attribution::Kind::loaded_module: return "loaded_module";
        case Attribution::Kind::kernel: return "kernel";
        case Attribution::Kind::no_crash: return "no_crash";
    }
    return "?";
}

namespace {

constexpr uint64_t kPage = 4096;  // MODULE_ALIGN: module allocations are page-aligned

std::string hex(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
}

// x86-64's module area (arch/x86/include/asm/pgtable_64_types.h): from the
// end of the kernel image mapping, __START_KERNEL_map + KERNEL_IMAGE_SIZE,
// to MODULES_END. KERNEL_IMAGE_SIZE is 1 GiB with CONFIG_RANDOMIZE_BASE,
// whose module_load_offset (arch/x86/kernel/module.c) only exists then.
// These are constants of the architecture, not in DWARF or VMCOREINFO.
constexpr uint64_t kStartKernelMap = 0xffffffff80000000ull;
constexpr uint64_t kModulesEnd = 0xffffffffff000000ull;

struct Area {
    uint64_t start, end, first;  // first: where the first module may go (start + module_load_offset)
};

Area module_area(const LinuxKernel& k) {
    const auto load_offset = k.find_symbol("module_load_offset");
    Area a{kStartKernelMap + (load_offset ? (1ull << 30) : (512ull << 20)), kModulesEnd, 0};
    a.first = a.start + (load_offset ? k.read_u64(*load_offset).value_or(0) : 0);
    if (a.first < a.start || a.first >= a.end) a.first = a.start;
    return a;
}

// Live module allocations: each module's core and init extents.
std::vector<std::pair<uint64_t, uint64_t>> live_extents(const std::vector<Module>& modules) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    for (const auto& m : modules)
        for (bool init : {false, true}) {
            uint64_t lo = UINT64_MAX, hi = 0;
            for (const auto& r : m.ranges)
                if ((r.what.rfind("init ", 0) == 0) == init) {
                    lo = std::min(lo, r.start);
                    hi = std::max(hi, r.start + r.size);
                }
            if (lo < hi) out.push_back({lo, hi});
        }
    std::sort(out.begin(), out.end());
    return out;
}

struct Holes {
    Area area;
    std::vector<std::pair<uint64_t, uint64_t>> live;
    bool in_area(uint64_t v) const { return v >= area.start && v < area.end; }
    bool in_hole(uint64_t v) const {
        if (!in_area(v)) return false;
        for (const auto& [lo, hi] : live)
            if (v >= lo && v < hi) return false;
        return true;
    }
    // [start, end) of the hole holding v.
    std::pair<uint64_t, uint64_t> hole(uint64_t v) const {
        uint64_t lo = area.start, hi = area.end;
        for (const auto& [a, b] : live) {
            if (b <= v) lo = std::max(lo, b);
            if (a > v) hi = std::min(hi, a);
        }
        return {lo, hi};
    }
};

// "name+0xoff" of a vmlinux address, "" if no symbol holds it.
std::string kernel_symbol(const LinuxKernel& k, uint64_t a) {
    if (a < k.slide()) return "";
    const ElfSymbol* s = k.vmlinux().symbol_at(a - k.slide());
    if (!s) return "";
    return s->name + "+" + hex(a - k.slide() - s->value);
}

std::string function_name(const std::string& sym) { return sym.substr(0, sym.find('+')); }

bool in_kernel_text(const LinuxKernel& k, uint64_t a) {
    auto lo = k.find_symbol("_stext"), hi = k.find_symbol("_etext");
    return lo && hi && a >= *lo && a < *hi;
}

// Does an indirect call end at `ret` (a call through a register, memory,
// or a retpoline thunk)? Such a call is how the kernel enters a callback.
bool after_indirect_call(const LinuxKernel& k, uint64_t ret) {
    uint8_t b[7];
    if (!k.mem().read_exact(ret - 7, b, 7)) return false;
    if (b[2] == 0xe8) {  // call rel32 to a thunk
        int32_t rel;
        memcpy(&rel, b + 3, 4);
        std::string t = function_name(kernel_symbol(k, ret + static_cast<int64_t>(rel)));
        return t.rfind("__x86_indirect_", 0) == 0;
    }
    if (b[5] == 0xff && (b[6] & 0xf8) == 0xd0) return true;                    // call *%reg
    if (b[4] == 0x41 && b[5] == 0xff && (b[6] & 0xf8) == 0xd0) return true;  // call *%r8..r15
    if (b[1] == 0xff && b[2] == 0x15) return true;                            // call *disp32(%rip)
    return false;
}

// ---------------------------------------------------------------- .ko match

struct Candidate {
    std::string name, path;
    std::unique_ptr<ElfImage> ko;
    KoLayout layout;
};

// What `off` (from the base) is in the .ko: "sym+0xoff" or "section+0xoff";
// "" if it cannot be what `e` expects there.
std::string explain(const Candidate& c, uint64_t off, StaleRef::Expect e, bool& exact) {
    exact = false;
    unsigned shndx = 0;
    uint64_t in = 0;
    if (off >= c.layout.size || !c.layout.section_at(*c.ko, off, shndx, in)) return "";
    const ElfSection* sec = nullptr;
    for (const auto& s : c.ko->sections())
        if (s.index == shndx) sec = &s;
    if (!sec) return "";
    const bool exec = sec->flags & SHF_EXECINSTR;
    const ElfSymbol* sym = c.ko->symbol_in_section(shndx, in);
    if (sym && in - sym->value >= std::max<uint64_t>(sym->size, 1) && sym->size) sym = nullptr;
    const std::string name = sym ? sym->name + "+" + hex(in - sym->value) : sec->name + "+" + hex(in);
    switch (e) {
        case StaleRef::Expect::function_entry:
            if (!exec || !sym || sym->type != STT_FUNC || sym->value != in) return "";
            exact = true;
            return name;
        case StaleRef::Expect::return_address: {
            if (!exec || !sym || in < 5) return "";
            auto bytes = c.ko->section_bytes(*sec);
            if (in > bytes.size()) return "";
            const uint8_t* p = bytes.data() + in;
            // call rel32, call *%reg, call *%r8..15, call *disp32(%rip)
            bool call = p[-5] == 0xe8 || (p[-2] == 0xff && (p[-1] & 0xf8) == 0xd0) ||
                        (in >= 3 && p[-3] == 0x41 && p[-2] == 0xff) || (in >= 6 && p[-6] == 0xff && p[-5] == 0x15);
            if (!call) return "";
            exact = true;
            return name;
        }
        case StaleRef::Expect::code:
            return exec && sym ? name : "";
        case StaleRef::Expect::any:
            return name;
    }
    return "";
}

struct Scored {
    uint64_t base = 0;
    size_t explained = 0, exact = 0;
    std::vector<std::string> why;
};

// The best page-aligned base of `c` in the hole: it must explain refs[primary];
// more refs explained, then more exact checks, win.
std::optional<KoMatch> match(const Candidate& c, std::vector<StaleRef>& refs, size_t primary,
                             std::pair<uint64_t, uint64_t> hole) {
    const uint64_t v = refs[primary].value;
    std::optional<Scored> best;
    size_t ties = 0;
    for (uint64_t t = v % kPage; t < c.layout.size; t += kPage) {
        const uint64_t base = v - t;
        if (base < hole.first || base + c.layout.size > hole.second) continue;
        Scored s{base, 0, 0, {}};
        bool ok = true;
        for (size_t i = 0; i < refs.size(); ++i) {
            bool exact = false;
            std::string w = refs[i].value >= base ? explain(c, refs[i].value - base, refs[i].expect, exact) : "";
            if (w.empty() && i == primary) ok = false;
            if (!w.empty()) ++s.explained;
            if (exact) ++s.exact;
            s.why.push_back(w);
        }
        if (!ok) continue;
        if (!best || s.explained > best->explained || (s.explained == best->explained && s.exact > best->exact)) {
            best = s;
            ties = 0;
        } else if (s.explained == best->explained && s.exact == best->exact) {
            ++ties;
        }
    }
    if (!best) return std::nullopt;
    for (size_t i = 0; i < refs.size(); ++i) refs[i].explained = best->why[i];
    KoMatch m;
    m.module = c.name;
    m.ko_path = c.path;
    m.base = best->base;
    m.size = c.layout.size;
    m.explained = best->explained;
    m.exact = best->exact;
    m.total = refs.size();
    m.alternatives = ties;
    return m;
}

// ---------------------------------------------------------------- the path

struct PathLayout {
    std::optional<uint64_t> timer_function, work_func, nb_call, dw_timer, kthread_threadfn, kthread_data,
        task_kthread, worker_current_work, worker_current_func;
};

PathLayout path_layout(const LinuxKernel& k) {
    auto& t = k.types();
    PathLayout L;
    L.timer_function = t.offset("timer_list", "function");
    L.work_func = t.offset("work_struct", "func");
    L.nb_call = t.offset("notifier_block", "notifier_call");
    L.dw_timer = t.offset("delayed_work", "timer");
    L.kthread_threadfn = t.offset("kthread", "threadfn");
    L.kthread_data = t.offset("kthread", "data");
    // Where a task keeps its struct kthread: worker_private since 5.17, set_child_tid before.
    L.task_kthread = t.offset("task_struct", "worker_private");
    if (!L.task_kthread) L.task_kthread = t.offset("task_struct", "set_child_tid");
    L.worker_current_work = t.offset("worker", "current_work");
    L.worker_current_func = t.offset("worker", "current_func");
    return L;
}

// The unregister function of a global notifier chain.
std::string unregister_for(const std::string& chain) {
    static const std::map<std::string, std::string> m = {
        {"reboot_notifier_list", "unregister_reboot_notifier"},
        {"restart_handler_list", "unregister_restart_handler"},
        {"panic_notifier_list", "atomic_notifier_chain_unregister(&panic_notifier_list, ...)"},
        {"die_chain", "unregister_die_notifier"},
        {"module_notify_list", "unregister_module_notifier"},
        {"pm_chain_head", "unregister_pm_notifier"},
        {"keyboard_notifier_list", "unregister_keyboard_notifier"},
        {"vt_notifier_list", "unregister_vt_notifier"},
        {"netdev_chain", "unregister_netdevice_notifier"},
        {"netevent_notif_chain", "unregister_netevent_notifier"},
        {"inetaddr_chain", "unregister_inetaddr_notifier"},
        {"inet6addr_chain", "unregister_inet6addr_notifier"},
        {"oom_notify_list", "unregister_oom_notifier"},
        {"vmap_notify_list", "unregister_vmap_purge_notifier"},
        {"memory_chain", "unregister_memory_notifier"},
        {"cpufreq_policy_notifier_list", "cpufreq_unregister_notifier"},
        {"cpufreq_transition_notifier_list", "cpufreq_unregister_notifier"},
        {"fb_notifier_list", "fb_unregister_client"},
        {"backlight_notifier", "backlight_unregister_notifier"},
        {"netlink_chain", "netlink_unregister_notifier"},
        {"power_supply_notifier", "power_supply_unreg_notifier"},
        {"blocking_lsm_notifier_chain", "unregister_blocking_lsm_notifier"},
    };
    auto it = m.find(chain);
    return it != m.end() ? it->second : "the unregister function of " + chain;
}

class Attributor {
public:
    explicit Attributor(const AttributionInput& in)
        : in_(in), k_(in.kernel), mem_(in.kernel.mem()), c_(in.context), L_(path_layout(in.kernel)) {
        h_.area = module_area(k_);
        h_.live = live_extents(in.modules);
    }

    Attribution run() {
        a_.area_start = h_.area.start;
        a_.area_end = h_.area.end;
        if (!c_.panicked && !c_.oops.found) {
            a_.kind = Attribution::Kind::no_crash;
            return std::move(a_);
        }
        const bool have_regs = c_.regs_addr != 0;
        const uint64_t pc = have_regs ? c_.regs.get(Reg::rip) : 0;
        const bool pc_stale = have_regs && h_.in_hole(pc);
        const bool addr_stale = c_.fault_address && h_.in_hole(*c_.fault_address);
        if (!have_regs) a_.notes.push_back("the oops registers were not found: the faulting pc is not known");
        if (pc_stale || addr_stale) {
            a_.kind = Attribution::Kind::unload;
            std::tie(a_.hole_start, a_.hole_end) = h_.hole(pc_stale ? pc : *c_.fault_address);
            unload(pc, pc_stale);
        } else if (const Module* m = have_regs ? live_module(pc) : nullptr) {
            a_.kind = Attribution::Kind::loaded_module;
            a_.module = m->name;
            a_.module_sources.push_back("live module holding the faulting pc");
            live_function(*m, pc);
        } else {
            a_.kind = Attribution::Kind::kernel;
        }
        return std::move(a_);
    }

private:
    const Module* live_module(uint64_t pc) const {
        for (const auto& m : in_.modules)
            if (m.contains(pc)) return &m;
        return nullptr;
    }

    // The function of pc in a live module, from its .ko and the section
    // addresses the kernel recorded.
    void live_function(const Module& m, uint64_t pc) {
        a_.confidence = "high";
        if (m.ko_path.empty()) {
            a_.notes.push_back("no .ko of " + m.name + " was found: the function is not known");
            return;
        }
        try {
            auto ko = ElfImage::open(m.ko_path);
            for (const auto& ks : m.sections)
                for (const auto& s : ko->sections())
                    if (s.name == ks.name && (s.flags & SHF_ALLOC) && pc >= ks.addr && pc - ks.addr < s.size)
                        if (const ElfSymbol* sym = ko->symbol_in_section(s.index, pc - ks.addr)) {
                            a_.function = sym->name;
                            a_.offset = pc - ks.addr - sym->value;
                            return;
                        }
        } catch (const Error& e) {
            a_.notes.push_back(e.what());
        }
    }

    void unload(uint64_t pc, bool pc_stale) {
        collect(pc, pc_stale);
        names();
        candidates();
        still_registered();
    }

    void add(std::string what, uint64_t value, uint64_t where, StaleRef::Expect e) {
        if (!h_.in_hole(value)) return;
        for (const auto& r : a_.stale)
            if (r.value == value && r.where == where && where) return;
        a_.stale.push_back({std::move(what), value, where, e, ""});
    }

    std::optional<uint64_t> u64(uint64_t a) { return mem_.read_u64(a); }

    // The stale addresses: the pc, the faulting address, the object the
    // caller handed over, registers and words on the crashing stack.
    void collect(uint64_t pc, bool pc_stale) {
        const uint64_t sp = c_.regs.get(Reg::rsp);
        const auto top = u64(sp), below = u64(sp - 8);
        thread_function();
        // How the pc was reached. A call leaves its return address at sp (an
        // indirect call: the kernel calling a callback). A return pops the
        // pc, which stays below sp unless the exception frame overwrote it
        // (but a retpoline's own `ret` leaves the call's target there too).
        // A kthread running on inside its thread function is never a call.
        const bool called = top && in_kernel_text(k_, *top) && after_indirect_call(k_, *top);
        const bool thread_inside = threadfn_ && h_.in_hole(threadfn_) && threadfn_ != pc;
        StaleRef::Expect pc_expect = StaleRef::Expect::code;
        if (called && !thread_inside) {
            pc_expect = StaleRef::Expect::function_entry;
        } else if (below && *below == pc) {
            pc_expect = StaleRef::Expect::return_address;
            a_.path.detail = "a return into the module: the popped address is still below the stack pointer";
        }
        path(pc, pc_stale, pc_expect);
        if (pc_stale) {
            a_.stale.insert(a_.stale.begin(), {"fault pc", pc, 0, pc_expect, ""});
            if (pc_expect == StaleRef::Expect::return_address) a_.stale[0].where = sp - 8;
        }
        if (c_.fault_address && *c_.fault_address != pc)
            add("fault address (" + c_.fault_address_source + ")", *c_.fault_address, 0, StaleRef::Expect::any);
        static const std::pair<Reg, const char*> regs[] = {
            {Reg::rax, "rax"}, {Reg::rbx, "rbx"}, {Reg::rcx, "rcx"}, {Reg::rdx, "rdx"}, {Reg::rsi, "rsi"},
            {Reg::rdi, "rdi"}, {Reg::rbp, "rbp"}, {Reg::r8, "r8"},   {Reg::r9, "r9"},   {Reg::r10, "r10"},
            {Reg::r11, "r11"}, {Reg::r12, "r12"}, {Reg::r13, "r13"}, {Reg::r14, "r14"}, {Reg::r15, "r15"}};
        if (c_.regs_addr)
            for (auto [r, n] : regs) add(std::string("register ") + n, c_.regs.get(r), 0, StaleRef::Expect::any);
        // The live part of the crashing stack near the fault.
        if (c_.regs_addr)
            for (uint64_t a = sp; a < sp + 512; a += 8)
                if (auto w = u64(a)) add("stack word", *w, a, StaleRef::Expect::any);
    }

    void path(uint64_t pc, bool pc_stale, StaleRef::Expect pc_expect) {
        CrashPath& p = a_.path;
        const uint64_t sp = c_.regs.get(Reg::rsp);
        // The caller: the kernel return address a call left at sp, else the
        // first kernel frame the unwind found below the fault.
        if (auto top = u64(sp); top && pc_expect == StaleRef::Expect::function_entry) p.caller = kernel_symbol(k_, *top);
        if (p.caller.empty())
            for (size_t i = c_.regs_frame + 1; i < in_.frames.size(); ++i)
                if (in_kernel_text(k_, in_.frames[i].pc)) {
                    p.caller = kernel_symbol(k_, in_.frames[i].pc);
                    break;
                }
        const std::string fn = function_name(p.caller);
        const uint64_t rdi = c_.regs.get(Reg::rdi);
        const uint64_t threadfn = threadfn_, kthread = kthread_;
        if (fn == "call_timer_fn" || fn == "expire_timers" || fn == "__run_timers") {
            p.kind = "timer";
            timer(pc);
        } else if (fn == "process_one_work") {
            p.kind = "work";
            work(pc, rdi);
        } else if (fn.find("notifier_call_chain") != std::string::npos) {
            p.kind = "callback";
            notifier(pc, rdi);
        } else if (threadfn && h_.in_hole(threadfn)) {
            p.kind = "thread";
            p.object = c_.task->task;
            p.object_type = "kthread";
            p.function = threadfn;
            p.missing_cleanup = "kthread_stop";
            p.detail = "kthread " + std::to_string(c_.task->id) + " (" + c_.task->name + ") kept running " +
                       (threadfn == pc ? "its thread function" : "in its thread function") + " after the unload" +
                       (p.detail.empty() ? "" : "; " + p.detail);
            add("kthread threadfn (struct kthread " + hex(kthread) + ")", threadfn, kthread + *L_.kthread_threadfn,
                StaleRef::Expect::function_entry);
        } else if (pc_expect == StaleRef::Expect::function_entry) {
            p.kind = "callback";
            notifier(pc, rdi);
        }
        if (pc_stale && p.kind.empty())
            a_.notes.push_back("how the kernel reached the module's address is not known (caller " +
                               (p.caller.empty() ? std::string("unknown") : p.caller) + ")");
    }

    // The crashing task's struct kthread and thread function, if it is a kthread.
    void thread_function() {
        if (!c_.task || !c_.task->kernel_thread || !L_.task_kthread || !L_.kthread_threadfn) return;
        if (auto kt = u64(c_.task->task + *L_.task_kthread); kt && *kt)
            if (auto f = u64(*kt + *L_.kthread_threadfn)) {
                kthread_ = *kt;
                threadfn_ = *f;
            }
    }

    void timer(uint64_t pc) {
        CrashPath& p = a_.path;
        p.object_type = "timer_list";
        p.missing_cleanup = "del_timer_sync";
        // call_timer_fn(timer, fn, baseclk) calls fn(timer): at fn's first
        // instruction rdi is the timer; else the base's running_timer.
        std::vector<std::pair<uint64_t, std::string>> tries = {{c_.regs.get(Reg::rdi), "rdi, the callback's argument"}};
        if (auto bases = k_.find_symbol("timer_bases"); bases && c_.task && c_.task->cpu >= 0) {
            auto size = k_.types().size("timer_base");
            auto running = k_.types().offset("timer_base", "running_timer");
            const ElfSymbol* s = k_.vmlinux().symbol("timer_bases");
            if (size && *size && running && s)
                for (uint64_t b = 0; b < s->size / *size && b < 8; ++b)
                    try {
                        uint64_t base = k_.per_cpu("timer_bases", c_.task->cpu) + b * *size;
                        if (auto t = u64(base + *running); t && *t)
                            tries.push_back({*t, "the CPU's timer_base.running_timer"});
                    } catch (const Error&) {
                    }
        }
        for (const auto& [t, how] : tries) {
            if (!L_.timer_function) break;
            auto f = u64(t + *L_.timer_function);
            if (!f || !h_.in_hole(*f)) continue;
            p.object = t;
            p.function = *f;
            p.detail = "timer_list " + hex(t) + " (" + how + ") fired with function " + hex(*f) +
                       (*f == pc ? "" : " (not the faulting pc)");
            // A self-re-arming timer needs its re-arming stopped too.
            if (k_.find_symbol("timer_shutdown_sync")) p.detail += "; timer_shutdown_sync also keeps it from being re-armed";
            add("timer_list.function", *f, t + *L_.timer_function, StaleRef::Expect::function_entry);
            return;
        }
        p.detail = "the timer_list handed to the callback was not found";
    }

    void work(uint64_t pc, uint64_t rdi) {
        CrashPath& p = a_.path;
        p.object_type = "work_struct";
        p.missing_cleanup = "cancel_work_sync";
        std::vector<std::pair<uint64_t, std::string>> tries = {{rdi, "rdi, the work function's argument"}};
        // The kworker's struct worker: its kthread's data.
        if (c_.task && L_.task_kthread && L_.kthread_data && L_.worker_current_work)
            if (auto kt = u64(c_.task->task + *L_.task_kthread); kt && *kt)
                if (auto w = u64(*kt + *L_.kthread_data); w && *w)
                    if (auto cw = u64(*w + *L_.worker_current_work); cw && *cw) {
                        tries.push_back({*cw, "the worker's current_work"});
                        if (L_.worker_current_func)
                            if (auto cf = u64(*w + *L_.worker_current_func))
                                add("worker.current_func", *cf, *w + *L_.worker_current_func,
                                    StaleRef::Expect::function_entry);
                    }
        for (const auto& [w, how] : tries) {
            if (!L_.work_func) break;
            auto f = u64(w + *L_.work_func);
            if (!f || !h_.in_hole(*f)) continue;
            p.object = w;
            p.function = *f;
            p.detail = "work_struct " + hex(w) + " (" + how + ") ran with function " + hex(*f);
            add("work_struct.func", *f, w + *L_.work_func, StaleRef::Expect::function_entry);
            // A delayed_work's timer calls delayed_work_timer_fn.
            if (L_.dw_timer && L_.timer_function)
                if (auto tf = u64(w + *L_.dw_timer + *L_.timer_function); tf && *tf == k_.find_symbol("delayed_work_timer_fn")) {
                    p.object_type = "delayed_work";
                    p.missing_cleanup = "cancel_delayed_work_sync";
                }
            if (!c_.oops.workqueue.empty()) p.detail += ", on workqueue " + c_.oops.workqueue.substr(0, c_.oops.workqueue.find(' '));
            return;
        }
        p.detail = "the work_struct handed to the work function was not found";
    }

    void notifier(uint64_t pc, uint64_t rdi) {
        CrashPath& p = a_.path;
        p.missing_cleanup = "unregister the callback before the module's memory goes (unregister_*)";
        if (!L_.nb_call) return;
        auto f = u64(rdi + *L_.nb_call);
        if (!f || *f != pc) {
            p.detail = "called through a stale function pointer; the object holding it was not found";
            return;
        }
        p.object = rdi;
        p.object_type = "notifier_block";
        p.function = *f;
        add("notifier_block.notifier_call", *f, rdi + *L_.nb_call, StaleRef::Expect::function_entry);
        // Which global chain still holds the block.
        Survey s;
        SurveyContext ctx{k_, in_.threads, in_.modules};
        try {
            survey_notifiers(ctx, s);
        } catch (const Error& e) {
            a_.notes.push_back(std::string("notifier chains: ") + e.what());
        }
        for (const auto& r : s.refs)
            if (r.object == rdi) p.chain = r.subject;
        if (!p.chain.empty()) p.missing_cleanup = unregister_for(p.chain);
        p.detail = "notifier_block " + hex(rdi) + (p.chain.empty() ? "" : " on " + p.chain) + " called its notifier_call " + hex(*f);
    }

    // The module's names as the kernel recorded them, and its log lines.
    void names() {
        auto add_name = [&](const std::string& n, const std::string& source) {
            if (n.empty()) return;
            if (a_.module.empty()) a_.module = n;
            if (n == a_.module) a_.module_sources.push_back(source);
            else if (std::find(extra_names_.begin(), extra_names_.end(), n) == extra_names_.end())
                extra_names_.push_back(n);
        };
        add_name(c_.last_unloaded_module, "last_unloaded_module");
        add_name(c_.oops.last_unloaded, "oops ([last unloaded: ...])");
        if (!in_.log) return;
        // Records "NAME: ..." of a module that is not loaded now: the
        // kernel's load lines (taint, signature) and the module's own.
        std::set<std::string> live;
        for (const auto& m : in_.modules) live.insert(m.name);
        for (const auto& r : in_.log->records) {
            size_t colon = r.text.find(": ");
            if (colon == std::string::npos || colon == 0 || colon > 56) continue;
            std::string n = r.text.substr(0, colon);
            if (n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) continue;
            if (live.count(n)) continue;
            if (!a_.module.empty() && n == a_.module) {
                if (a_.log_lines.size() < 50) a_.log_lines.push_back(format_log_record(r));
                log_named_ = true;
            }
        }
        if (log_named_) a_.module_sources.push_back("log");
        for (auto& l : a_.log_lines)
            while (!l.empty() && l.back() == '\n') l.pop_back();
    }

    void candidates() {
        if (a_.stale.empty()) return;
        // The ref that fixes the base: the pc if stale, else the first one.
        const size_t primary = 0;
        std::vector<std::string> names;
        if (!a_.module.empty()) names.push_back(a_.module);
        names.insert(names.end(), extra_names_.begin(), extra_names_.end());
        KoLocator loc(in_.ko_dirs, in_.release);
        a_.searched = loc.search_path();
        std::vector<std::string> paths;
        std::vector<std::string> path_names;
        for (const auto& n : names)
            if (std::string p = loc.find(n); !p.empty()) {
                paths.push_back(p);
                path_names.push_back(n);
            }
        const bool named = !names.empty();
        if (!named) {
            // Nothing names the module: every .ko of the given directories.
            std::error_code ec;
            for (const auto& d : in_.ko_dirs) {
                std::filesystem::recursive_directory_iterator it(d, std::filesystem::directory_options::skip_permission_denied, ec), end;
                for (size_t n = 0; !ec && it != end && paths.size() < 5000 && n < 200000; it.increment(ec), ++n)
                    if (it->path().extension() == ".ko" && it->is_regular_file(ec)) {
                        paths.push_back(it->path().string());
                        path_names.push_back(it->path().stem().string());
                    }
            }
        }
        std::vector<KoMatch> found;
        std::vector<std::vector<StaleRef>> explained;
        for (size_t i = 0; i < paths.size(); ++i) {
            Candidate c;
            c.name = path_names[i];
            std::replace(c.name.begin(), c.name.end(), '-', '_');
            c.path = paths[i];
            try {
                c.ko = ElfImage::open(paths[i]);
            } catch (const Error& e) {
                a_.notes.push_back(e.what());
                continue;
            }
            if (!c.ko->relocatable()) continue;
            c.layout = ko_core_layout(*c.ko, kPage);
            ++a_.candidates_tried;
            std::vector<StaleRef> refs = a_.stale;
            if (auto m = match(c, refs, primary, {a_.hole_start, a_.hole_end})) {
                found.push_back(*m);
                explained.push_back(std::move(refs));
            }
        }
        if (named && paths.empty())
            a_.notes.push_back("no .ko of " + join(names) + " was found (searched " + join(a_.searched) +
                               "): the function is not known; pass --modules-dir DIR");
        // The kernel's name first, then the best explanation.
        size_t best = found.size();
        for (size_t i = 0; i < found.size(); ++i) {
            if (best == found.size()) { best = i; continue; }
            const KoMatch& a = found[i];
            const KoMatch& b = found[best];
            const bool an = a.module == a_.module, bn = b.module == a_.module;
            if (an != bn ? an : (a.explained != b.explained ? a.explained > b.explained : a.exact > b.exact)) best = i;
        }
        if (best == found.size()) {
            if (!paths.empty())
                a_.notes.push_back("no candidate .ko explains the stale addresses (" + std::to_string(paths.size()) +
                                   " tried)");
            a_.confidence = a_.module.empty() ? "" : (a_.module_sources.size() > 1 ? "medium" : "low");
            return;
        }
        KoMatch& m = found[best];
        a_.stale = explained[best];
        if (a_.module.empty() || m.module == a_.module) {
            if (a_.module.empty()) a_.module = m.module;
            a_.module_sources.push_back("ko match");
        } else {
            a_.notes.push_back(m.module + ".ko explains the stale addresses but the kernel names " + a_.module);
        }
        if (!a_.stale.empty() && a_.stale[0].what == "fault pc" && !a_.stale[0].explained.empty()) {
            const std::string& e = a_.stale[0].explained;
            const size_t plus = e.rfind('+');
            a_.function = e.substr(0, plus);
            a_.offset = plus == std::string::npos ? 0 : std::stoull(e.substr(plus + 1), nullptr, 16);
        }
        size_t others = 0;
        for (size_t i = 0; i < found.size(); ++i)
            if (i != best && found[i].explained >= m.explained) ++others;
        const bool agrees = m.module == a_.module && a_.module_sources.size() > 1;
        if (agrees && m.explained == m.total && m.exact > 0 && m.alternatives == 0) a_.confidence = "high";
        else if (agrees || (m.exact > 0 && others == 0 && m.alternatives == 0)) a_.confidence = "medium";
        else a_.confidence = "low";
        if (others) a_.notes.push_back(std::to_string(others) + " other candidate .ko explain as many stale addresses");
        if (m.alternatives) a_.notes.push_back(std::to_string(m.alternatives) + " other load bases of " + m.module + ".ko explain as many");
        a_.match = m;
    }

    // Kernel references that still point into the hole: timers pending,
    // work queued or running, notifiers on global chains.
    void still_registered() {
        SurveyContext ctx{k_, in_.threads, in_.modules};
        Survey s;
        for (auto run : {survey_timers, survey_workqueues, survey_notifiers}) {
            try {
                run(ctx, s);
            } catch (const Error& e) {
                a_.notes.push_back(e.what());
            }
        }
        auto in = [&](uint64_t v) { return v >= a_.hole_start && v < a_.hole_end && h_.in_hole(v); };
        for (const auto& r : s.refs)
            if ((r.func && in(r.func)) || (r.object && in(r.object)))
                a_.still_registered.push_back(std::string(to_string(r.kind)) + " " + hex(r.object) + " calling " +
                                              hex(r.func) + " (" + r.subject + (r.detail.empty() ? "" : ", " + r.detail) + ")");
    }

    static std::string join(const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
        return s;
    }

    const AttributionInput& in_;
    const LinuxKernel& k_;
    MemorySource& mem_;
    const CrashContext& c_;
    PathLayout L_;
    Holes h_;
    Attribution a_;
    std::vector<std::string> extra_names_;
    uint64_t kthread_ = 0, threadfn_ = 0;
    bool log_named_ = false;
};

}  // namespace

Attribution attribute_crash(const AttributionInput& in) { return Attributor(in).run(); }

}  // namespace kq
