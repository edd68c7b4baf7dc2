// The raw reference scan: every 8-byte-aligned word of physical memory whose
// value lies in a set of target ranges (a module's memory). The catch-all for
// references no provider knows about; its hits are attributed by the caller.
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace kq {

struct RefHit {
    uint64_t phys = 0;   // where the word is
    uint64_t value = 0;  // what it holds (an address inside a target)
};

struct RefScanResult {
    std::vector<RefHit> hits;
    uint64_t bytes_scanned = 0;
    uint64_t bytes_unreadable = 0;
    double seconds = 0;
    bool truncated = false;  // stopped at max_hits
};

struct RefScanRequest {
    // Reads physical memory: returns bytes read (short at a hole).
    std::function<size_t(uint64_t phys, void* buf, size_t len)> read_phys;
    std::vector<std::pair<uint64_t, uint64_t>> memory;   // physical ranges to scan, [start, end)
    std::vector<std::pair<uint64_t, uint64_t>> targets;  // value ranges that count, [start, end)
    std::vector<uint64_t> skip_pages;  // physical page numbers not to scan (the target's own memory)
    uint64_t page_size = 4096;
    size_t max_hits = 100000;
    // Called about every 64 MiB with the bytes done and the total.
    std::function<void(uint64_t done, uint64_t total)> progress;
};

RefScanResult scan_refs(const RefScanRequest& req);

}  // namespace kq
