#include "inuse/ref_scan.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace kq {

RefScanResult scan_refs(const RefScanRequest& req) {
    RefScanResult r;
    if (req.targets.empty()) return r;
    auto targets = req.targets;
    std::sort(targets.begin(), targets.end());
    // One subtraction and compare rejects almost every word: the targets'
    // overall span is small (a module), kernel memory is mostly elsewhere.
    const uint64_t lo = targets.front().first;
    uint64_t hi = lo;
    for (const auto& t : targets) hi = std::max(hi, t.second);
    const uint64_t span = hi - lo;
    auto in_target = [&](uint64_t v) {
        auto it = std::upper_bound(targets.begin(), targets.end(), v,
                                   [](uint64_t x, const std::pair<uint64_t, uint64_t>& t) { return x < t.first; });
        return it != targets.begin() && v < std::prev(it)->second;
    };
    std::vector<uint64_t> skip = req.skip_pages;
    std::sort(skip.begin(), skip.end());

    uint64_t total = 0;
    for (const auto& m : req.memory) total += m.second - m.first;
    constexpr size_t kChunk = 4 << 20;
    std::vector<uint64_t> buf(kChunk / 8);
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t next_note = 64ull << 20;
    for (const auto& [start, end] : req.memory) {
        for (uint64_t at = start & ~7ull; at < end;) {
            const size_t want = size_t(std::min<uint64_t>(kChunk, end - at));
            const size_t got = req.read_phys(at, buf.data(), want);
            const size_t words = got / 8;
            for (size_t i = 0; i < words; ++i) {
                const uint64_t v = buf[i];
                if (v - lo >= span) [[likely]] continue;
                if (!in_target(v)) continue;
                const uint64_t pa = at + i * 8;
                if (std::binary_search(skip.begin(), skip.end(), pa / req.page_size)) continue;
                if (r.hits.size() >= req.max_hits) {
                    r.truncated = true;
                    break;
                }
                r.hits.push_back({pa, v});
            }
            r.bytes_scanned += words * 8;
            if (got < want) {
                // A hole: skip to the next page and count what was missed.
                const uint64_t resume = (at + got + req.page_size) & ~(req.page_size - 1);
                r.bytes_unreadable += std::min(resume, end) - (at + got);
                at = resume;
            } else {
                at += want;
            }
            if (req.progress && r.bytes_scanned + r.bytes_unreadable >= next_note) {
                req.progress(r.bytes_scanned + r.bytes_unreadable, total);
                next_note += 64ull << 20;
            }
            if (r.truncated) break;
        }
        if (r.truncated) break;
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

}  // namespace kq
