// Bounded walks of FreeBSD's sys/queue.h lists. LIST, TAILQ, SLIST and
// STAILQ all link elements (not their link fields) through a next pointer
// inside each element, from the head's first pointer to NULL; the walk
// needs only where that pointer lies in an element.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_set>

#include "kernel/list_walk.h"
#include "vmcore/memory_source.h"

namespace kq {

// Calls visit(element) for each element from `first` (the head's lh_first,
// tqh_first ...), following the pointer at element + next_offset, until NULL
// or visit returns false. Stops with a problem on an unreadable pointer, an
// element reached twice (a cycle) or more than `limit` elements: never loops
// forever.
inline WalkResult walk_queue(MemorySource& mem, uint64_t first, uint64_t next_offset,
                             const std::function<bool(uint64_t element)>& visit, size_t limit = 1u << 22) {
    WalkResult r;
    std::unordered_set<uint64_t> seen;
    std::optional<uint64_t> e = first;
    while (true) {
        if (!e) { r.problem = "unreadable list pointer"; return r; }
        if (*e == 0) return r;
        if (!seen.insert(*e).second) { r.problem = "list loops (" + addr_text(*e) + " reached twice)"; return r; }
        if (r.count >= limit) { r.problem = "list longer than " + std::to_string(limit); return r; }
        ++r.count;
        if (!visit(*e)) return r;
        e = mem.read_u64(*e + next_offset);
    }
}

// The same from the head itself: its first pointer is read at `head`.
inline WalkResult walk_queue_head(MemorySource& mem, uint64_t head, uint64_t next_offset,
                                  const std::function<bool(uint64_t element)>& visit, size_t limit = 1u << 22) {
    auto first = mem.read_u64(head);
    if (!first) return {0, "unreadable list head at " + addr_text(head)};
    return walk_queue(mem, *first, next_offset, visit, limit);
}

}  // namespace kq
