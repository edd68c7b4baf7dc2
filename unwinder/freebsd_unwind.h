// An Unwinder set up for a FreeBSD amd64 kernel: no ORC (FreeBSD has none),
// so DWARF CFI of kernel.debug, prologue analysis, frame pointers and the
// validated scan; code bytes from memory with kernel.debug's file as
// fallback; each module's .ko for its function symbols. A stack ends at its
// base function (fork_trampoline for a kernel-created thread, btext for
// thread0) or at a trap frame from user mode (system calls, interrupts of
// user code); a trap frame from kernel mode (an interrupt or exception in
// the kernel) is crossed to the interrupted code.
//
// Like linux_unwind.*, the one file of unwinder/ for its OS: it reads
// kernel structures through kernel/freebsd's FreebsdKernel and Module.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "kernel/freebsd/freebsd_kernel.h"
#include "kernel/kernel.h"
#include "unwinder/code_map.h"
#include "unwinder/code_memory.h"
#include "unwinder/kernel_unwinder.h"
#include "unwinder/unwinder.h"

namespace kq {

struct FreebsdUnwindOptions {
    // Open each module's .ko (Module::ko_path) for function symbols.
    bool open_ko = true;
    // Trap frames crossed in one unwind at most.
    int max_trap_frames = 16;
    UnwinderOptions unwinder;
};

class FreebsdUnwinder : public KernelUnwinder {
public:
    // Problems with single modules are warnings; nothing here throws for a
    // kernel.debug without CFI (the other methods remain).
    FreebsdUnwinder(const FreebsdKernel& k, const std::vector<Module>& modules, FreebsdUnwindOptions opts = {});
    ~FreebsdUnwinder();

    Unwinder& unwinder() { return *unwinder_; }
    const CodeMap& code_map() const override { return *map_; }
    const std::vector<std::string>& warnings() const override { return warnings_; }
    // None: FreeBSD's interrupt stacks are not read.
    const std::vector<StackRange>& cpu_stacks() const override { return unwinder_->cpu_stacks(); }

    // Where a thread's unwind starts: its saved context, whose rip is a
    // return address even for a thread that was running (dumppcb and
    // stoppcbs are saved by savectx).
    static UnwindStart start(const Thread& t);
    std::vector<Frame> unwind(const Thread& t) override;
    // Every validated return address on the thread's stack (see Unwinder::scan).
    std::vector<StackWord> scan(const Thread& t, const std::vector<Frame>& frames) override {
        return unwinder_->scan(start(t), frames);
    }

    // "function+0x1c [module]" for a frame (pc-1 looked up for return
    // addresses, the offset shown from pc), or the hex address.
    std::string describe(const Frame& f) const override;
    std::string describe(uint64_t addr) const;

private:
    enum class Edge : uint8_t { none, base, trap };
    Edge edge_at(uint64_t lookup_pc, std::string* name) const;

    const FreebsdKernel& k_;
    FreebsdUnwindOptions opts_;
    std::unique_ptr<ImageMemory> image_mem_;
    std::unique_ptr<LayeredMemory> code_mem_;
    std::vector<std::unique_ptr<ElfImage>> kos_;
    std::unique_ptr<ImageCodeMap> map_;
    std::unique_ptr<Unwinder> unwinder_;
    std::vector<std::string> warnings_;
};

}  // namespace kq
