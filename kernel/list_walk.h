// Bounded walk of a kernel doubly linked list (struct list_head).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_set>

#include "vmcore/memory_source.h"

namespace kq {

struct WalkResult {
    size_t count = 0;
    std::string problem;  // "" when the list closed back on its head
    bool complete() const { return problem.empty(); }
};

// Calls visit(entry) for each node of the list whose head is at `head`,
// where entry = node - node_offset (the containing object). Stops with a
// problem on an unreadable or NULL pointer, a cycle that does not pass
// through the head, or more than `limit` nodes: never loops forever.
inline WalkResult walk_list(MemorySource& mem, uint64_t head, uint64_t node_offset,
                            const std::function<bool(uint64_t entry)>& visit,
                            size_t limit = 1u << 22) {
    WalkResult r;
    std::unordered_set<uint64_t> seen;
    auto next = mem.read_u64(head);
    while (true) {
        if (!next) { r.problem = "unreadable list pointer"; return r; }
        if (*next == head) return r;
        if (*next == 0) { r.problem = "NULL list pointer"; return r; }
        if (!seen.insert(*next).second) { r.problem = "list loops without returning to its head"; return r; }
        if (r.count >= limit) { r.problem = "list longer than " + std::to_string(limit); return r; }
        ++r.count;
        if (!visit(*next - node_offset)) return r;
        next = mem.read_u64(*next);
    }
}

}  // namespace kq
