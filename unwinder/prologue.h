// Prologue analysis: from a function's code alone, where is the CFA (the
// caller's sp) at a given pc, and where did the function save the caller's
// rbp. Capstone decodes the function once; the stack effect of each
// instruction (push/pop, sub/add/lea/and rsp, mov rbp,rsp, leave ...) is
// propagated along the control flow (fallthrough and direct jumps), so code
// after an early epilogue gets the state of the path that reaches it, not
// the state left by a linear walk. Paths are followed out of the function
// into code that is not another function (GCC's .cold parts, the kernel's
// .altinstr_aux) and back, and along the edges only the kernel's tables
// know (static keys, exception fixups). Results are cached per function.
//
// Not thread-safe: one analyzer per thread.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "unwinder/code_map.h"
#include "unwinder/disasm.h"
#include "unwinder/hidden_edges.h"
#include "vmcore/memory_source.h"

namespace kq {

struct CfaRule {
    // sp_indirect: on another stack (call_on_stack), whose top word holds
    // the rsp of this frame: CFA = *(rsp) + offset.
    enum class Base : uint8_t { sp, bp, sp_indirect };
    Base base = Base::sp;
    int32_t offset = 8;  // CFA = base register + offset
    // CFA - rsp when known (also while the CFA is rbp-based).
    std::optional<int32_t> sp_offset;
    // The caller's rbp is saved at CFA + bp_saved (negative), when saved.
    std::optional<int32_t> bp_saved;

    bool operator==(const CfaRule&) const = default;
};

class PrologueAnalyzer {
public:
    // code: where instruction bytes are read; map: function bounds and thunks
    // (may be null: then only analyze(start, size, pc) can be used, and a jmp
    // to a return thunk is taken for a tail call, which ends a path all the
    // same).
    PrologueAnalyzer(MemorySource& code, const CodeMap* map, size_t cache_functions = 4096);

    // Static-key and exception-fixup edges (may be null). Clears the cache.
    void set_hidden_edges(const HiddenEdges* e);

    // The rule in effect just before the instruction at pc executes, using
    // the CodeMap to find the function. nullopt: no function, pc not on an
    // instruction boundary, not reached, or the stack pointer was lost.
    std::optional<CfaRule> at(uint64_t pc);
    // The same with explicit bounds (size 0: unknown, analyze up to pc).
    std::optional<CfaRule> at(uint64_t start, uint64_t size, uint64_t pc);

    struct Stats {
        uint64_t functions = 0;      // analyzed (cache misses)
        uint64_t cache_hits = 0;
        uint64_t instructions = 0;   // decoded
        uint64_t merge_conflicts = 0;  // two paths reached one instruction with different states
        uint64_t undecodable = 0;    // functions cut short by bytes Capstone rejects
        uint64_t foreign = 0;        // instructions followed outside the function
    };
    const Stats& stats() const { return stats_; }

    // Largest function analyzed in full (bytes); larger ones are analyzed
    // up to the pc only.
    static constexpr uint64_t kMaxFunction = 256 * 1024;
    // Instructions followed outside a function, at most, per function.
    static constexpr size_t kMaxForeign = 4096;

private:
    struct Analysis {
        std::vector<uint32_t> offsets;              // instruction starts, from the function start
        std::vector<std::optional<CfaRule>> rules;  // rule before each
    };
    std::shared_ptr<const Analysis> analyze(uint64_t start, uint64_t size);

    MemorySource& code_;
    bool follow_out(uint64_t target) const;

    const CodeMap* map_;
    const HiddenEdges* edges_ = nullptr;
    Disassembler dis_{true};
    size_t cache_max_;
    std::unordered_map<uint64_t, std::pair<std::shared_ptr<const Analysis>, std::list<uint64_t>::iterator>> cache_;
    std::list<uint64_t> lru_;
    Stats stats_;
};

}  // namespace kq
