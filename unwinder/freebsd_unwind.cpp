#include "unwinder/freebsd_unwind.h"

#include "symbols/types.h"

namespace kq {
namespace {

// struct trapframe's members by register (amd64/include/frame.h).
const std::pair<Reg, const char*> kTrapframe[] = {
    {Reg::rdi, "tf_rdi"}, {Reg::rsi, "tf_rsi"}, {Reg::rdx, "tf_rdx"}, {Reg::rcx, "tf_rcx"},
    {Reg::r8, "tf_r8"},   {Reg::r9, "tf_r9"},   {Reg::rax, "tf_rax"}, {Reg::rbx, "tf_rbx"},
    {Reg::rbp, "tf_rbp"}, {Reg::r10, "tf_r10"}, {Reg::r11, "tf_r11"}, {Reg::r12, "tf_r12"},
    {Reg::r13, "tf_r13"}, {Reg::r14, "tf_r14"}, {Reg::r15, "tf_r15"}, {Reg::rip, "tf_rip"},
    {Reg::cs, "tf_cs"},   {Reg::eflags, "tf_rflags"}, {Reg::rsp, "tf_rsp"}, {Reg::ss, "tf_ss"},
};

// The trap frame as a pt_regs-like layout (the Unwinder only uses it to
// cross ORC REGS entries, which FreeBSD has none of).
PtRegsLayout trapframe_layout(Types& t) {
    PtRegsLayout l;
    l.size = static_cast<uint32_t>(t.size("trapframe").value_or(0));
    for (auto [r, n] : kTrapframe)
        if (auto o = t.offset("trapframe", n)) l.off[static_cast<unsigned>(r)] = static_cast<uint32_t>(*o);
    return l;
}

std::vector<std::pair<uint64_t, uint64_t>> text_of(const Module& m) {
    std::vector<std::pair<uint64_t, uint64_t>> t;
    for (const auto& r : m.ranges)
        if (r.what == "text" || r.what == "image") t.push_back({r.start, r.start + r.size});
    return t;
}

}  // namespace

FreebsdUnwinder::~FreebsdUnwinder() = default;

FreebsdUnwinder::FreebsdUnwinder(const FreebsdKernel& k, const std::vector<Module>& modules, FreebsdUnwindOptions opts)
    : k_(k), opts_(opts) {
    const ElfImage& image = k.image();
    image_mem_ = std::make_unique<ImageMemory>(image, 0);
    code_mem_ = std::make_unique<LayeredMemory>(k.mem(), *image_mem_);
    map_ = std::make_unique<ImageCodeMap>(image, 0);
    for (const Module& m : modules) {
        ImageCodeMap::ModuleText mt;
        mt.name = m.name;
        mt.text = text_of(m);
        for (const auto& s : m.sections) mt.section_addrs[s.name] = s.addr;
        if (opts.open_ko && !m.ko_path.empty()) {
            try {
                kos_.push_back(ElfImage::open(m.ko_path));
                mt.ko = kos_.back().get();
            } catch (const Error& e) {
                warnings_.push_back(m.name + ": " + e.what());
            }
        }
        map_->add_module(std::move(mt));
    }
    unwinder_ = std::make_unique<Unwinder>(k.mem(), *code_mem_, *map_, OrcIndex{}, trapframe_layout(k.types()),
                                           opts.unwinder);
    // kernel.debug's CFI (.debug_frame or .eh_frame); a .ko's would need
    // its relocations: modules unwind by frame pointers and prologues.
    unwinder_->add_cfi(image.path(), 0);
    // A thread that never ran resumes at fork_trampoline's first
    // instruction (cpu_fork() put it in its pcb): an exact pc.
    if (auto a = k.find_symbol("fork_trampoline")) unwinder_->set_exact_pc_addresses({*a});
}

UnwindStart FreebsdUnwinder::start(const Thread& t) {
    UnwindStart s;
    s.regs = t.regs;
    s.pc_exact = false;
    s.stack_base = t.stack_base;
    s.stack_size = t.stack_size;
    s.cpu = t.cpu;
    s.on_cpu = false;  // amd64 FreeBSD takes interrupts on the thread's stack
    return s;
}

// Is the function holding this pc where a stack begins (a new thread's
// fork_trampoline, the boot stack's btext), or a trap entry that left a
// struct trapframe at its frame's sp (exception and interrupt stubs:
// calltrap, X<name> from IDTVEC(); the system call entry)?
FreebsdUnwinder::Edge FreebsdUnwinder::edge_at(uint64_t lookup_pc, std::string* name) const {
    auto f = map_->function_at(lookup_pc);
    if (!f || !f->module.empty()) return Edge::none;
    const std::string& n = f->name;
    *name = n;
    if (n == "fork_trampoline" || n == "btext") return Edge::base;
    if (n == "calltrap" || n == "nmi_calltrap" || n == "mchk_calltrap" || n == "dbg_calltrap" ||
        n == "fast_syscall_common" || n == "fast_syscall")
        return Edge::trap;
    if (n.size() > 1 && n[0] == 'X' && n[1] != 'X' && n[1] != '_') return Edge::trap;  // IDTVEC(); not XXH64 ...
    return Edge::none;
}

std::vector<Frame> FreebsdUnwinder::unwind(const Thread& t) {
    UnwindStart s = start(t);
    std::vector<Frame> out;
    for (int traps = 0;; ++traps) {
        std::vector<Frame> part = unwinder_->unwind(s);
        // Saved contexts and kernel-mode trap frames hold kernel pcs: any
        // other is bad data, not a return to user mode.
        if (!part.empty() && part[0].stop == StopReason::user_mode) {
            part[0].stop = StopReason::bad_pc;
            part[0].stop_detail = "the saved pc " + hex_text(part[0].pc) + " is not kernel code";
        }
        size_t i = 0;
        Edge edge = Edge::none;
        std::string name;
        for (; i < part.size(); ++i)
            if ((edge = edge_at(part[i].lookup_pc(), &name)) != Edge::none) break;
        if (edge == Edge::none) {
            out.insert(out.end(), part.begin(), part.end());
            return out;
        }
        part.resize(i + 1);
        Frame& last = part.back();
        last.stop = StopReason::none;
        last.stop_detail.clear();
        out.insert(out.end(), part.begin(), part.end());
        Frame& f = out.back();
        if (edge == Edge::base) {
            f.stop = StopReason::end_of_stack;
            f.stop_detail = "the stack's base (" + name + ")";
            return out;
        }
        // A trap frame at the entry's sp: from user mode it is the base,
        // from kernel mode the interrupted code continues below it.
        MemorySource& mem = k_.mem();
        RegisterSet regs;
        bool ok = true;
        for (auto [r, member] : kTrapframe) {
            auto v = mem.read_u64(f.sp + k_.off("trapframe", member));
            if (!v) {
                ok = false;
                break;
            }
            regs.set(r, *v);
        }
        if (!ok) {
            f.stop = StopReason::unreadable;
            f.stop_detail = "the trap frame of " + name + " at " + hex_text(f.sp) + " is not in the dump";
            return out;
        }
        if (regs.get(Reg::cs) & 3) {
            f.stop = StopReason::user_mode;
            f.stop_detail = "trap frame from user mode (" + name + ")";
            return out;
        }
        if (traps + 1 >= opts_.max_trap_frames || out.size() >= opts_.unwinder.max_frames) {
            f.stop = StopReason::max_frames;
            f.stop_detail = std::to_string(opts_.max_trap_frames) + " trap frames";
            return out;
        }
        if (regs.get(Reg::rsp) <= f.sp) {
            f.stop = StopReason::sp_not_increasing;
            f.stop_detail = "the trap frame of " + name + " resumes at sp " + hex_text(regs.get(Reg::rsp));
            return out;
        }
        s.regs = regs;
        s.pc_exact = true;  // where the trap interrupted
    }
}

std::string FreebsdUnwinder::describe(uint64_t addr) const { return describe_code(*map_, addr, addr); }

std::string FreebsdUnwinder::describe(const Frame& fr) const { return describe_code(*map_, fr.pc, fr.lookup_pc()); }

}  // namespace kq
