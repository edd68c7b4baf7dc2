#include "kernel/freebsd/thread.h"

#include <unordered_map>

#include "kernel/freebsd/queue_walk.h"

namespace kq {
namespace {

// sys/proc.h: td_inhibitors bits, td_flags and p_flag bits (ABI constants,
// not in DWARF).
constexpr int64_t TDI_SUSPENDED = 0x1, TDI_SLEEPING = 0x2, TDI_SWAPPED = 0x4, TDI_LOCK = 0x8, TDI_IWAIT = 0x10;
constexpr int64_t TDF_SINTR = 0x8;
constexpr int64_t P_KPROC = 0x4, P_SYSTEM = 0x200;
constexpr int64_t NOCPU = -1;

struct States {
    std::optional<int64_t> inactive, inhibited, can_run, runq, running;
    explicit States(Types& t)
        : inactive(t.enumerator("TDS_INACTIVE")), inhibited(t.enumerator("TDS_INHIBITED")),
          can_run(t.enumerator("TDS_CAN_RUN")), runq(t.enumerator("TDS_RUNQ")), running(t.enumerator("TDS_RUNNING")) {}
};

std::string state_letter(const States& s, int64_t state, int64_t inhibitors, int64_t flags) {
    if (state == s.running || state == s.runq || state == s.can_run) return "R";
    if (state == s.inactive) return "I";
    if (state == s.inhibited) {
        if (inhibitors & TDI_LOCK) return "L";
        if (inhibitors & TDI_SLEEPING) return flags & TDF_SINTR ? "S" : "D";
        if (inhibitors & TDI_IWAIT) return "W";
        if (inhibitors & TDI_SUSPENDED) return "T";
        if (inhibitors & TDI_SWAPPED) return "S";
    }
    return "?";
}

// Registers saved in a struct pcb (cpu_switch, savectx): the callee-saved
// ones, the stack pointer and the return address.
RegisterSet pcb_registers(const FreebsdKernel& k, uint64_t pcb) {
    static const std::pair<Reg, const char*> regs[] = {
        {Reg::rip, "pcb_rip"}, {Reg::rsp, "pcb_rsp"}, {Reg::rbp, "pcb_rbp"}, {Reg::rbx, "pcb_rbx"},
        {Reg::r12, "pcb_r12"}, {Reg::r13, "pcb_r13"}, {Reg::r14, "pcb_r14"}, {Reg::r15, "pcb_r15"},
    };
    RegisterSet r;
    if (!pcb) return r;
    for (auto [reg, name] : regs)
        if (auto v = k.mem().read_u64(pcb + k.off("pcb", name))) r.set(reg, *v);
    // A context never saved (a CPU not stopped, a pcb never switched from)
    // is no context: the unwind must say so rather than stop at pc 0.
    if (!r.get(Reg::rip) || !r.get(Reg::rsp)) return {};
    return r;
}

// Where CPU n's context was saved when it was stopped: stoppcbs is an array
// of struct pcb, or (in kernels that allocate it) a pointer to one.
uint64_t stoppcb(const FreebsdKernel& k, int cpu) {
    const ElfSymbol* s = k.image().symbol("stoppcbs");
    if (!s) return 0;
    const uint64_t size = k.types().size("pcb").value_or(0);
    if (!size) return 0;
    uint64_t base = s->value;
    if (s->size == 8 && size != 8) {
        auto p = k.mem().read_u64(base);
        if (!p || !*p) return 0;
        base = *p;
    } else if (s->size && (cpu + 1) * size > s->size) {
        return 0;
    }
    return base + cpu * size;
}

}  // namespace

FreebsdThreads read_threads(const FreebsdKernel& k) {
    FreebsdThreads out;
    MemorySource& mem = k.mem();
    const States states(k.types());
    const uint64_t o_plist = k.off("thread", "td_plist.tqe_next");
    const uint64_t o_plink = k.off("proc", "p_list.le_next");
    const uint64_t o_threads = k.off("proc", "p_threads.tqh_first");

    // Which thread each CPU ran, and which one wrote the dump.
    std::unordered_map<uint64_t, int> running;
    for (int cpu : k.cpus())
        if (uint64_t pc = k.pcpu(cpu))
            if (auto td = k.read_ptr(pc, "pcpu", "pc_curthread"); td && *td) running[*td] = cpu;
    std::optional<int32_t> dumptid;
    if (auto a = k.find_symbol("dumptid")) dumptid = mem.read_as<int32_t>(*a);
    const auto dumppcb = k.find_symbol("dumppcb");

    auto read_thread = [&](uint64_t td, int64_t pflags) {
        auto tid = k.read_int(td, "thread", "td_tid");
        auto state = k.read_int(td, "thread", "td_state");
        if (!tid || !state) {
            out.problems.add("thread " + addr_text(td) + " is unreadable");
            return;
        }
        Thread t;
        t.id = *tid;
        t.task = td;
        t.name = k.read_name(td, "thread", "td_name");
        t.state = state_letter(states, *state, k.read_int(td, "thread", "td_inhibitors").value_or(0),
                               k.read_int(td, "thread", "td_flags").value_or(0));
        t.kernel_thread = pflags & (P_KPROC | P_SYSTEM);
        const int64_t oncpu = k.read_int(td, "thread", "td_oncpu").value_or(NOCPU);
        const int64_t lastcpu = k.read_int(td, "thread", "td_lastcpu").value_or(NOCPU);
        auto kstack = k.read_ptr(td, "thread", "td_kstack");
        auto pages = k.read_int(td, "thread", "td_kstack_pages");
        if (kstack && pages && *pages > 0 && *pages <= 1024) {
            t.stack_base = *kstack;
            t.stack_size = static_cast<uint64_t>(*pages) * kFreebsdPageSize;
        }
        auto cur = running.find(td);
        t.on_cpu = cur != running.end() || (*state == states.running && oncpu != NOCPU);
        t.cpu = cur != running.end() ? cur->second : oncpu != NOCPU ? static_cast<int>(oncpu) : static_cast<int>(lastcpu);
        // The context: the dump's for its writer, the stopped CPU's for the
        // other running threads, the last switch's for every other one. (A
        // running thread's td_pcb is stale: its stack has moved on.)
        if (t.on_cpu) {
            uint64_t pcb = dumptid && *dumptid == t.id && dumppcb ? *dumppcb : t.cpu >= 0 ? stoppcb(k, t.cpu) : 0;
            t.regs = pcb_registers(k, pcb);  // if not saved, the unwind says so
        } else if (auto pcb = k.read_ptr(td, "thread", "td_pcb"); pcb && *pcb) {
            t.regs = pcb_registers(k, *pcb);
        }
        out.index[td] = out.threads.size();
        out.threads.push_back(std::move(t));
    };

    const uint64_t allproc = k.symbol("allproc");
    WalkResult procs = walk_queue_head(mem, allproc, o_plink, [&](uint64_t p) {
        ++out.procs;
        const int64_t pflags = k.read_int(p, "proc", "p_flag").value_or(0);
        auto first = mem.read_u64(p + o_threads);
        if (!first) {
            out.problems.add("process " + addr_text(p) + " is unreadable");
            return true;
        }
        WalkResult r = walk_queue(mem, *first, o_plist, [&](uint64_t td) {
            read_thread(td, pflags);
            return true;
        });
        out.problems.check("threads of process " + addr_text(p), r);
        return true;
    });
    out.problems.check("allproc", procs);
    return out;
}

}  // namespace kq
