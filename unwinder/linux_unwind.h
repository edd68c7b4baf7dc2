// An Unwinder set up for a Linux x86-64 kernel: vmlinux's and the modules'
// ORC tables, pt_regs layout, IRQ and exception stacks of every CPU,
// static-key and exception-fixup edges, code bytes from memory with
// vmlinux's file as fallback.
//
// This is the one file of unwinder/ that reads kernel structures (through
// kernel/linux's LinuxKernel and Module); the rest knows no OS.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "kernel/linux/linux_kernel.h"
#include "unwinder/code_map.h"
#include "unwinder/code_memory.h"
#include "unwinder/hidden_edges.h"
#include "unwinder/kernel_unwinder.h"
#include "unwinder/orc.h"
#include "unwinder/unwinder.h"

namespace kq {

struct LinuxUnwindOptions {
    // Bit positions of struct orc_entry's bitfields (DWARF byte offsets and
    // the size come from Types). Until Types reports bit positions, the
    // caller picks the format; it is checked against the data (see
    // orc_layout_score) and refused if it does not explain it.
    OrcLayout orc_bits = OrcLayout::x86_64_end_bit();
    // Open each module's .ko (Module::ko_path) for function symbols.
    bool open_ko = true;
    UnwinderOptions unwinder;
};

class LinuxUnwinder : public KernelUnwinder {
public:
    // Throws kq::Error if vmlinux has no usable ORC table or the layouts are
    // missing from DWARF. Problems with single modules or CPUs are warnings.
    LinuxUnwinder(const LinuxKernel& k, const std::vector<Module>& modules, LinuxUnwindOptions opts = {});
    ~LinuxUnwinder();

    Unwinder& unwinder() { return *unwinder_; }
    const CodeMap& code_map() const override { return *map_; }
    const std::vector<std::string>& warnings() const override { return warnings_; }
    const std::vector<StackRange>& cpu_stacks() const override { return unwinder_->cpu_stacks(); }

    std::vector<Frame> unwind(const Thread& t) override { return unwinder_->unwind(t); }
    std::vector<StackWord> scan(const Thread& t, const std::vector<Frame>& frames) override {
        return unwinder_->scan(t, frames);
    }

    // "function+0x1c [module]" for a frame (pc-1 looked up for return
    // addresses, the offset shown from pc), or the hex address.
    std::string describe(const Frame& f) const override;
    std::string describe(uint64_t addr) const;

private:
    void add_modules(const LinuxKernel& k, const std::vector<Module>& modules, const OrcLayout& layout);
    void add_cpu_stacks(const LinuxKernel& k);

    std::unique_ptr<ImageMemory> image_mem_;
    std::unique_ptr<LayeredMemory> code_mem_;
    std::vector<std::unique_ptr<ElfImage>> kos_;
    std::unique_ptr<ImageCodeMap> map_;
    HiddenEdges edges_;
    std::unique_ptr<Unwinder> unwinder_;
    std::vector<std::string> warnings_;
    std::vector<StackRange> stacks_;
};

}  // namespace kq
