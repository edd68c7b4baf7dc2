// The kernel stack unwinder (x86-64): ORC first, then frame pointers,
// prologue analysis and a Capstone-validated stack scan, crossing pt_regs
// frames (interrupts, exceptions, syscalls) and IRQ/exception stacks.
//
// Bounded and defensive: at most max_frames frames, sp strictly increasing
// on each stack, each stack entered once, every word read checked against the
// thread's stacks. Bad input ends the unwind with a StopReason on the last
// frame; nothing here throws for bad memory.
//
// Not thread-safe (caches, Capstone handles): one Unwinder per thread.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernel/kernel.h"
#include "unwinder/code_map.h"
#include "unwinder/disasm.h"
#include "unwinder/dwarf_cfi.h"
#include "unwinder/frame.h"
#include "unwinder/orc.h"
#include "unwinder/prologue.h"
#include "vmcore/memory_source.h"
#include "vmcore/registers.h"

namespace kq {

class Types;

// Offsets of the registers in struct pt_regs (from DWARF).
struct PtRegsLayout {
    uint32_t size = 0;
    std::array<std::optional<uint32_t>, static_cast<unsigned>(Reg::count)> off{};

    std::optional<uint32_t> at(Reg r) const { return off[static_cast<unsigned>(r)]; }
    bool valid() const { return size && at(Reg::rip) && at(Reg::rsp) && at(Reg::cs); }
    // Members r15 ... ss of struct pt_regs. Throws kq::Error if ip, sp or cs
    // are missing.
    static PtRegsLayout from_types(Types& types);
};

// A stack other than the task's: an IRQ stack or an exception (IST) stack
// of one CPU.
struct StackRange {
    uint64_t base = 0;  // lowest address
    uint64_t size = 0;
    StackKind kind = StackKind::unknown;
    int cpu = -1;
    std::string name;  // "task", "irq", "NMI", "DF", "DB", "MCE" ...
    bool contains(uint64_t a, uint64_t len = 8) const { return a >= base && a - base <= size && size - (a - base) >= len; }
};

// Where an unwind starts.
struct UnwindStart {
    RegisterSet regs;
    // regs.rip is where a CPU was executing (on-CPU registers); false for a
    // saved switch frame, whose rip is a return address.
    bool pc_exact = false;
    uint64_t stack_base = 0, stack_size = 0;  // the task stack
    int cpu = -1;          // for the CPU's IRQ/exception stacks
    bool on_cpu = false;   // only then may the unwind use the CPU's stacks

    static UnwindStart from(const Thread& t);
};

struct UnwinderOptions {
    size_t max_frames = 512;
    // Use the ORC tables (off: only to test the other methods).
    bool orc = true;
    // Use DWARF CFI where ORC has no entry.
    bool dwarf_cfi = true;
    // Continue with a validated stack scan when nothing else finds the caller.
    bool scan_fallback = true;
    // Use the rbp chain when there is no unwind data.
    bool frame_pointers = true;
    // Use prologue analysis when there is no unwind data.
    bool prologue = true;
};

// A return address found on a stack by scanning (advisory evidence).
struct StackWord {
    uint64_t slot = 0;   // where on the stack
    uint64_t value = 0;  // the return address
    CallSite call;       // the call it returns from
    enum class Where : uint8_t {
        frame,   // an unwound frame's return address
        live,    // in the live part of the stack (at or above the initial sp), not a frame's
        stale,   // below the initial sp: left by calls that already returned
    } where = Where::live;
    StackKind stack = StackKind::unknown;
};
const char* to_string(StackWord::Where w);

class Unwinder {
public:
    // mem: stacks and module tables; code: instruction bytes (the dump,
    // falling back to vmlinux's file contents); map: text ranges, function
    // bounds, thunks; orc: vmlinux's and modules' tables; regs: pt_regs layout.
    Unwinder(MemorySource& mem, MemorySource& code, const CodeMap& map, OrcIndex orc, PtRegsLayout regs,
             UnwinderOptions opts = {});
    ~Unwinder();

    // IRQ and exception stacks of every CPU.
    void set_cpu_stacks(std::vector<StackRange> stacks) { cpu_stacks_ = std::move(stacks); }
    const std::vector<StackRange>& cpu_stacks() const { return cpu_stacks_; }
    // DWARF CFI of an image, opened on first use (only when ORC fails).
    void add_cfi(std::string path, uint64_t slide);
    // Addresses where a saved (not on-CPU) pc is exact rather than a return
    // address: ret_from_fork, where a new task's switch frame points.
    void set_exact_pc_addresses(std::vector<uint64_t> a) { exact_pcs_ = std::move(a); }

    std::vector<Frame> unwind(const Thread& t) { return unwind(UnwindStart::from(t)); }
    std::vector<Frame> unwind(const UnwindStart& start);

    // Every validated return address on the thread's stacks, labelled
    // against the frames of unwind() (pass {} to label nothing as frame).
    std::vector<StackWord> scan(const UnwindStart& start, const std::vector<Frame>& frames);
    std::vector<StackWord> scan(const Thread& t, const std::vector<Frame>& frames) {
        return scan(UnwindStart::from(t), frames);
    }

    // Is w a plausible return address: kernel text, just after a call.
    std::optional<CallSite> validate_return_address(uint64_t w);
    // The same, and whether the call goes to the function holding
    // callee_pc (the frame above).
    ReturnCheck check_return_address(uint64_t w, uint64_t callee_pc);

    const OrcIndex& orc() const { return orc_; }
    PrologueAnalyzer& prologue() { return prologue_; }

private:
    class Run;
    friend class Run;

    MemorySource& mem_;
    MemorySource& code_;
    const CodeMap& map_;
    OrcIndex orc_;
    PtRegsLayout regs_;
    UnwinderOptions opts_;
    std::vector<StackRange> cpu_stacks_;
    std::vector<uint64_t> exact_pcs_;
    struct Cfi {
        std::string path;
        uint64_t slide = 0;
        std::unique_ptr<DwarfCfi> cfi;
        bool tried = false;
    };
    std::vector<Cfi> cfi_;
    std::optional<CfiRow> cfi_row(uint64_t pc);
    Disassembler dis_{false};
    PrologueAnalyzer prologue_;
    // validate_return_address by address: code and map never change, and
    // the same return addresses recur on most stacks.
    std::unordered_map<uint64_t, std::optional<CallSite>> calls_;
};

}  // namespace kq
