// A live kernel behind a GDB stub as a RemoteTarget: the proxy between
// LLDB and the stub. The stub's threads are virtual CPUs; LLDB is shown the
// kernel's tasks instead, read anew at every stop by the kernel's
// personality (the `Tasks` callback). Resumes, breakpoints and interrupts
// go through to the stub; memory reads are cached until the next resume.
// Writes are refused unless a command holds a WriteGrant.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kernel/kernel.h"
#include "remote/live_memory.h"
#include "remote/remote_target.h"
#include "remote/stub_connection.h"
#include "vmcore/dump.h"

namespace kq {

class LiveTarget : public RemoteTarget {
public:
    // The tasks of the kernel at a stop, given each vCPU's registers (in the
    // stub's order); fills cpu_of_vcpu with the kernel's CPU number of each.
    using Tasks = std::function<const std::vector<Thread>&(const std::vector<CpuState>& vcpus,
                                                            std::vector<int>& cpu_of_vcpu)>;

    // Connects (the stub stops the guest) and reads the vCPUs' registers.
    // Throws kq::Error.
    explicit LiveTarget(StubOptions opts);
    // Detaches if LLDB did not: the guest runs on without breakpoints.
    ~LiveTarget() override;

    // The vCPUs' registers at the current stop, in the stub's order.
    const std::vector<CpuState>& vcpus() const { return vcpus_; }
    LiveMemory& live_memory() { return mem_; }
    const StubOptions& options() const { return opts_; }
    // Sets the kernel's view and reads the tasks of the current stop.
    void set_tasks(Tasks tasks);
    // True from a resume until the stop's tasks are read.
    bool running() const { return running_; }
    bool detached() const { return detached_; }
    // Counts stops: what was read at an earlier one may be stale.
    uint64_t stop_count() const { return stops_; }

    // While one exists, LLDB's memory writes reach the stub. Only commands
    // that say they write take one.
    class WriteGrant {
    public:
        explicit WriteGrant(LiveTarget& t) : t_(t) { ++t_.write_grants_; }
        ~WriteGrant() { --t_.write_grants_; }
        WriteGrant(const WriteGrant&) = delete;
        WriteGrant& operator=(const WriteGrant&) = delete;

    private:
        LiveTarget& t_;
    };

    // A command that drives the kernel itself (kmod unload, kmod quiesce)
    // while LLDB stays stopped. Its stops read only the vCPUs' registers;
    // refresh_tasks() reads the tasks when the command needs them. After
    // it, resync_lldb() makes LLDB see the new state.
    enum class Run { stopped, timed_out, gone };
    // Runs every vCPU until one stops (a breakpoint) or `timeout` passes;
    // then it interrupts the kernel, so it is stopped either way.
    Run run(std::chrono::milliseconds timeout);
    // Steps one instruction on vCPU `vcpu` alone (over a breakpoint at its
    // pc: the breakpoint is lifted for the step). Throws kq::Error.
    void step_over(size_t vcpu);
    // The vCPU (index into vcpus()) that reported the last stop.
    size_t stop_vcpu() const { return stop_vcpu_; }
    void refresh_tasks() { refresh(vcpu_ids_[stop_vcpu_]); }
    // The task running on vCPU `vcpu` as of the last refresh; null if unknown.
    const Thread* task_on_vcpu(size_t vcpu) const;
    // The kernel's tasks as of the last refresh.
    const std::vector<Thread>& tasks() const { return tasks_now_; }
    // Writes registers of vCPU `vcpu` ('P' packets). Needs a WriteGrant.
    // Throws kq::Error if the stub refuses.
    void set_registers(size_t vcpu, const std::vector<std::pair<Reg, uint64_t>>& regs);
    // Reads memory as vCPU `vcpu` sees it (a user address of the task that
    // runs there), uncached; fewer bytes where it is unreadable.
    std::string read_as_cpu(size_t vcpu, uint64_t addr, size_t len);
    bool has_breakpoint(uint64_t addr) const { return breakpoints_.count({0, addr}) > 0; }
    // LLDB still holds the state of its last stop: its next resume ends at
    // once in a stop that shows it the kernel as it is now.
    void resync_lldb() { resync_ = true; }

    // RemoteTarget
    const std::vector<RemoteThread>& threads() override { return threads_; }
    MemorySource& memory() override { return mem_; }
    int64_t stop_thread() override { return stop_tid_; }
    uint64_t image_slide() override { return slide_; }
    void set_image_slide(uint64_t s) { slide_ = s; }
    int stop_signal() override { return signal_; }
    std::string stop_reason() override { return reason_; }
    bool can_run() override { return true; }
    std::string resume(const std::vector<ResumeAction>& actions) override;
    int event_fd() override { return stub_.fd(); }
    RunState poll_stop() override;
    void interrupt() override;
    std::string breakpoint(bool insert, int type, uint64_t addr, uint64_t kind) override;
    std::string write_memory(uint64_t addr, const std::string& bytes) override;
    void detach() override;

private:
    void read_vcpus();
    // Waits for the stub's stop reply until `deadline`; false on timeout.
    bool await_stop(std::chrono::steady_clock::time_point deadline);
    void stopped_at(const std::string& reply);
    void refresh(const std::string& stop_vcpu);
    const Thread* task_of(int64_t tid) const;

    StubOptions opts_;
    StubConnection stub_;
    LiveMemory mem_;
    Tasks tasks_;
    std::vector<std::string> vcpu_ids_;  // the stub's thread ids
    std::vector<std::pair<std::string, unsigned>> reg_layout_;  // 'g' packet: name, bits
    std::vector<CpuState> vcpus_;
    std::vector<int> cpu_of_vcpu_;
    std::vector<Thread> tasks_now_;
    std::vector<RemoteThread> threads_;
    size_t stop_vcpu_ = 0;
    std::atomic<bool> resync_{false};
    int64_t stop_tid_ = 1;
    int signal_ = 5;
    std::string reason_;
    uint64_t slide_ = 0;
    std::map<std::pair<int, uint64_t>, uint64_t> breakpoints_;  // (type, address) inserted -> kind
    std::atomic<bool> running_{false};
    std::atomic<uint64_t> stops_{0};
    std::atomic<int> write_grants_{0};
    std::atomic<bool> detached_{false};
};

}  // namespace kq
