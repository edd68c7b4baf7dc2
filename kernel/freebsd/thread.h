// FreeBSD threads: every thread of every process on allproc, with the
// registers an unwinder starts from.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "kernel/freebsd/freebsd_kernel.h"
#include "kernel/kernel.h"
#include "kernel/list_walk.h"

namespace kq {

struct FreebsdThreads {
    // Thread::id is td_tid, Thread::task the struct thread, Thread::name
    // td_name, Thread::state a ps(1) letter (R running or runnable, S/D
    // asleep interruptibly or not, L blocked on a lock, W waiting for an
    // interrupt, T suspended, I never run).
    //
    // Registers: the thread that wrote the dump (dumptid) from dumppcb, the
    // other threads running on a CPU from stoppcbs[cpu] (saved when the CPU
    // was stopped), every other one from its td_pcb (saved by cpu_switch).
    // All three are saved contexts whose rip is a return address (savectx,
    // cpu_switch): on_cpu says the thread was running, not that rip is exact.
    std::vector<Thread> threads;
    size_t procs = 0;
    // What could not be read (a process or thread list cut short, a thread
    // unreadable): threads may be missing.
    WalkProblems problems;
    bool complete() const { return problems.empty(); }

    // The thread whose struct thread is at `td`, or nullptr.
    const Thread* find(uint64_t td) const {
        auto it = index.find(td);
        return it == index.end() ? nullptr : &threads[it->second];
    }
    std::unordered_map<uint64_t, size_t> index;  // struct thread -> threads[i]
};

FreebsdThreads read_threads(const FreebsdKernel& k);

}  // namespace kq
