// Bounded walks of kernel linked structures: doubly linked lists (struct
// list_head), hash lists (struct hlist_head) and red-black trees.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

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

// Calls visit(entry) for each node of the hash list whose first pointer is
// `first` (the value of hlist_head.first; hlist_node.next at offset 0), where
// entry = node - node_offset. The list ends at a NULL next pointer. Stops with
// a problem on an unreadable pointer, a cycle or more than `limit` nodes.
inline WalkResult walk_hlist(MemorySource& mem, uint64_t first, uint64_t node_offset,
                             const std::function<bool(uint64_t entry)>& visit,
                             size_t limit = 1u << 22) {
    WalkResult r;
    std::unordered_set<uint64_t> seen;
    std::optional<uint64_t> node = first;
    while (true) {
        if (!node) { r.problem = "unreadable hlist pointer"; return r; }
        if (*node == 0) return r;
        if (!seen.insert(*node).second) { r.problem = "hlist loops"; return r; }
        if (r.count >= limit) { r.problem = "hlist longer than " + std::to_string(limit); return r; }
        ++r.count;
        if (!visit(*node - node_offset)) return r;
        node = mem.read_u64(*node);
    }
}

// Calls visit(entry) for each node of the red-black tree whose root node is
// `root` (the value of rb_root.rb_node), in order (leftmost first), where
// entry = node - node_offset; left/right: offsets of rb_left and rb_right in
// struct rb_node. Iterative: no recursion however deep the tree. Stops with a
// problem on an unreadable child pointer, a node reached twice (a cycle or a
// shared subtree) or more than `limit` nodes.
inline WalkResult walk_rbtree(MemorySource& mem, uint64_t root, uint64_t left, uint64_t right,
                              uint64_t node_offset, const std::function<bool(uint64_t entry)>& visit,
                              size_t limit = 1u << 22) {
    WalkResult r;
    std::unordered_set<uint64_t> seen;
    std::vector<uint64_t> path;  // nodes whose left subtree is being visited
    uint64_t cur = root;
    while (cur || !path.empty()) {
        while (cur) {
            if (!seen.insert(cur).second) { r.problem = "rbtree node reached twice (a cycle)"; return r; }
            if (seen.size() > limit) { r.problem = "rbtree larger than " + std::to_string(limit); return r; }
            path.push_back(cur);
            auto l = mem.read_u64(cur + left);
            if (!l) { r.problem = "unreadable rbtree pointer"; return r; }
            cur = *l;
        }
        uint64_t n = path.back();
        path.pop_back();
        ++r.count;
        if (!visit(n - node_offset)) return r;
        auto rt = mem.read_u64(n + right);
        if (!rt) { r.problem = "unreadable rbtree pointer"; return r; }
        cur = *rt;
    }
    return r;
}

// An address as walk problems name it: "0xffff888003a1c000".
inline std::string addr_text(uint64_t a) {
    char b[24];
    snprintf(b, sizeof b, "%#llx", static_cast<unsigned long long>(a));
    return b;
}

// What the walks over one subsystem could not read, for its coverage gap.
struct WalkProblems {
    std::vector<std::string> all;

    void add(std::string problem) { all.push_back(std::move(problem)); }
    // Records `where: problem` when the walk did not complete; returns whether it did.
    bool check(const std::string& where, const WalkResult& r) {
        if (!r.complete()) add(where + ": " + r.problem);
        return r.complete();
    }
    bool empty() const { return all.empty(); }
    size_t size() const { return all.size(); }
    // "the first problem (and N more)"; "" when there was none.
    std::string summary() const {
        if (all.empty()) return {};
        return all.size() == 1 ? all.front() : all.front() + " (and " + std::to_string(all.size() - 1) + " more)";
    }
};

}  // namespace kq
