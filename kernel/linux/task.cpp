#include "kernel/linux/task.h"

#include <unistd.h>

#include <cstring>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "kernel/list_walk.h"

namespace kq {
namespace {

// THREAD_SIZE: the init task's stack, which the linker script bounds by
// init_stack and __end_init_task; else sizeof(union thread_union) from DWARF.
// Symbols first: Debian's DWARF has no thread_union, and proving a type
// absent indexes every compile unit (1.5 s on vmlinux).
uint64_t stack_size(const LinuxKernel& k) {
    auto lo = k.find_symbol("init_stack"), hi = k.find_symbol("__end_init_task");
    if (lo && hi && *hi > *lo) return *hi - *lo;
    if (auto s = k.types().size("thread_union")) return *s;
    return k.types().size_or_throw("irq_stack");
}

// Layout of the task_struct members this file reads, from DWARF.
struct TaskLayout {
    uint64_t tasks, pid, tgid, comm, state, exit_state, flags, cpu, on_cpu, stack, thread_sp, signal,
        thread_node, mm;
    uint64_t signal_thread_head;
    uint64_t frame_size, f_r15, f_r14, f_r13, f_r12, f_bx, f_bp, f_ret;
    uint64_t thread_size;
    uint64_t rq_curr, rq_idle;

    explicit TaskLayout(const LinuxKernel& k) {
        const char* T = "task_struct";
        tasks = k.off(T, "tasks");
        pid = k.off(T, "pid");
        tgid = k.off(T, "tgid");
        comm = k.off(T, "comm");
        state = k.off(T, "__state");
        exit_state = k.off(T, "exit_state");
        flags = k.off(T, "flags");
        cpu = k.off(T, "thread_info.cpu");
        on_cpu = k.off(T, "on_cpu");
        stack = k.off(T, "stack");
        thread_sp = k.off(T, "thread.sp");
        signal = k.off(T, "signal");
        thread_node = k.off(T, "thread_node");
        mm = k.off(T, "mm");
        signal_thread_head = k.off("signal_struct", "thread_head");
        const char* F = "inactive_task_frame";
        frame_size = k.types().size_or_throw(F);
        f_r15 = k.off(F, "r15");
        f_r14 = k.off(F, "r14");
        f_r13 = k.off(F, "r13");
        f_r12 = k.off(F, "r12");
        f_bx = k.off(F, "bx");
        f_bp = k.off(F, "bp");
        f_ret = k.off(F, "ret_addr");
        thread_size = stack_size(k);
        rq_curr = k.off("rq", "curr");
        rq_idle = k.off("rq", "idle");
    }
};

// The letter ps prints for a task (fs/proc/array.c's task_state_array).
std::string state_letter(uint32_t state, uint32_t exit_state) {
    // TASK_REPORT bits, then TASK_IDLE (uninterruptible + noload) shown as I.
    if (exit_state & 0x20) return "X";
    if (exit_state & 0x10) return "Z";
    if ((state & 0x402) == 0x402) return "I";
    if (state & 0x01) return "S";
    if (state & 0x02) return "D";
    if (state & 0x04) return "T";
    if (state & 0x08) return "t";
    if (state & 0x40) return "P";
    return "R";
}

constexpr uint32_t kPfKthread = 0x00200000;  // PF_KTHREAD, include/linux/sched.h

class Reader {
public:
    Reader(const LinuxKernel& k, const std::vector<CpuState>& cpus)
        : k_(k), mem_(k.mem()), L_(k), cpus_(cpus) {}

    TaskList run() {
        const std::vector<uint64_t> idle = read_runqueues();
        const int ncpu = static_cast<int>(idle.size());
        uint64_t init_task = k_.symbol("init_task");
        add(init_task, 0);
        for (int c = 1; c < ncpu; ++c)
            if (idle[c] && idle[c] != init_task) add(idle[c], c);

        // Processes on init_task.tasks, then each one's threads.
        std::vector<uint64_t> procs{init_task};
        auto w = walk_list(mem_, init_task + L_.tasks, L_.tasks, [&](uint64_t t) {
            procs.push_back(t);
            return true;
        });
        if (!w.complete()) out_.warnings.push_back("task list: " + w.problem);
        for (uint64_t p : procs) {
            auto sig = mem_.read_u64(p + L_.signal);
            if (!sig || !*sig) {
                add(p, -1);
                continue;
            }
            auto tw = walk_list(mem_, *sig + L_.signal_thread_head, L_.thread_node, [&](uint64_t t) {
                add(t, -1);
                return true;
            });
            if (!tw.complete()) {
                add(p, -1);
                out_.warnings.push_back("threads of task " + hex(p) + ": " + tw.problem);
            }
        }
        return std::move(out_);
    }

    // One task, as run() reads it (whether it runs now, its switch frame).
    std::optional<Thread> one(uint64_t task) {
        read_runqueues();
        add(task, -1);
        if (out_.threads.empty()) return std::nullopt;
        return std::move(out_.threads.back());
    }

private:
    // Which task each CPU runs (running_, idle_cpus_); returns each CPU's idle task.
    std::vector<uint64_t> read_runqueues() {
        int ncpu = k_.nr_cpus();
        std::vector<uint64_t> curr(ncpu, 0), idle(ncpu, 0);
        for (int c = 0; c < ncpu; ++c) {
            try {
                uint64_t rq = k_.per_cpu("runqueues", c);
                curr[c] = mem_.read_u64(rq + L_.rq_curr).value_or(0);
                idle[c] = mem_.read_u64(rq + L_.rq_idle).value_or(0);
            } catch (const Error& e) {
                out_.warnings.push_back("CPU " + std::to_string(c) + " runqueue: " + e.what());
            }
        }
        for (int c = 0; c < ncpu; ++c)
            if (curr[c]) running_[curr[c]] = c;
        for (int c = 0; c < ncpu; ++c)
            if (curr[c] && curr[c] == idle[c]) idle_cpus_.insert(c);
        return idle;
    }

    static std::string hex(uint64_t v) {
        char b[24];
        snprintf(b, sizeof b, "%#llx", static_cast<unsigned long long>(v));
        return b;
    }

    void add(uint64_t task, int idle_cpu) {
        if (!seen_.insert(task).second) return;
        Thread t;
        t.task = task;
        auto pid = mem_.read_as<int32_t>(task + L_.pid);
        if (!pid) {
            out_.warnings.push_back("unreadable task_struct at " + hex(task));
            return;
        }
        t.name = mem_.read_cstr(task + L_.comm, 16);
        uint32_t state = mem_.read_as<uint32_t>(task + L_.state).value_or(0);
        uint32_t exit_state = mem_.read_as<uint32_t>(task + L_.exit_state).value_or(0);
        t.state = state_letter(state, exit_state);
        uint32_t flags = mem_.read_as<uint32_t>(task + L_.flags).value_or(0);
        t.kernel_thread = (flags & kPfKthread) || idle_cpu >= 0 || *pid == 0;
        t.cpu = static_cast<int>(mem_.read_as<uint32_t>(task + L_.cpu).value_or(0));
        t.id = *pid == 0 ? kIdleThreadIdBase + (idle_cpu < 0 ? 0 : idle_cpu) : *pid;
        t.stack_base = mem_.read_u64(task + L_.stack).value_or(0);
        t.stack_size = L_.thread_size;

        auto r = running_.find(task);
        if (r != running_.end() && r->second < static_cast<int>(cpus_.size())) {
            t.on_cpu = true;
            t.cpu = r->second;
            t.regs = cpus_[r->second].regs;
        } else if (r != running_.end() && mem_.live()) {
            // A running kernel read without its CPUs' registers: the switch
            // frame is stale, the task is somewhere else by now.
            t.on_cpu = true;
            t.cpu = r->second;
            t.regs_unknown = true;
            const auto tgid = mem_.read_as<int32_t>(task + L_.tgid);
            if (tgid && *tgid == static_cast<int32_t>(getpid()))
                t.whereabouts = "kquiesce's own process, reading the kernel's memory";
            else if (idle_cpu >= 0 && idle_cpus_.count(r->second))
                t.whereabouts = "the idle task of an idle CPU";
        } else {
            saved_context(task, t);
        }
        out_.threads.push_back(std::move(t));
    }

    // A task off the CPU stopped in __switch_to_asm: thread.sp points at its
    // inactive_task_frame, whose ret_addr is where it resumes.
    void saved_context(uint64_t task, Thread& t) {
        auto sp = mem_.read_u64(task + L_.thread_sp);
        if (!sp) return;
        std::vector<uint8_t> f(L_.frame_size);
        if (!mem_.read_exact(*sp, f.data(), f.size())) return;
        auto at = [&](uint64_t off) {
            uint64_t v;
            memcpy(&v, f.data() + off, 8);
            return v;
        };
        t.regs.set(Reg::r15, at(L_.f_r15));
        t.regs.set(Reg::r14, at(L_.f_r14));
        t.regs.set(Reg::r13, at(L_.f_r13));
        t.regs.set(Reg::r12, at(L_.f_r12));
        t.regs.set(Reg::rbx, at(L_.f_bx));
        t.regs.set(Reg::rbp, at(L_.f_bp));
        t.regs.set(Reg::rip, at(L_.f_ret));
        t.regs.set(Reg::rsp, *sp + L_.frame_size);
    }

    const LinuxKernel& k_;
    MemorySource& mem_;
    TaskLayout L_;
    const std::vector<CpuState>& cpus_;
    std::unordered_map<uint64_t, int> running_;
    std::unordered_set<uint64_t> seen_;
    std::unordered_set<int> idle_cpus_;  // CPUs running their idle task
    TaskList out_;
};

}  // namespace

TaskList read_tasks(const LinuxKernel& k, const std::vector<CpuState>& cpus) {
    return Reader(k, cpus).run();
}

std::optional<Thread> read_task(const LinuxKernel& k, uint64_t task) { return Reader(k, {}).one(task); }

}  // namespace kq
