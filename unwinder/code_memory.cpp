#include "unwinder/code_memory.h"

#include <algorithm>
#include <cstring>

namespace kq {

size_t ImageMemory::read(uint64_t vaddr, void* buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        auto b = image_.bytes_at(vaddr + done - slide_, len - done);
        if (b.empty()) break;
        memcpy(static_cast<uint8_t*>(buf) + done, b.data(), b.size());
        done += b.size();
    }
    return done;
}

size_t LayeredMemory::read(uint64_t vaddr, void* buf, size_t len) {
    for (auto [lo, hi] : fallback_first_)
        if (vaddr >= lo && vaddr < hi) {
            size_t n = std::min<uint64_t>(len, hi - vaddr);
            size_t got = read_ordered(fallback_, primary_, vaddr, buf, n);
            if (got < n || n == len) return got;
            return got + read(vaddr + n, static_cast<uint8_t*>(buf) + n, len - n);
        }
    return read_ordered(primary_, fallback_, vaddr, buf, len);
}

size_t LayeredMemory::read_ordered(MemorySource& first, MemorySource& second, uint64_t vaddr, void* buf,
                                   size_t len) {
    size_t done = 0;
    while (done < len) {
        auto* out = static_cast<uint8_t*>(buf) + done;
        size_t n = first.read(vaddr + done, out, len - done);
        if (n == 0) {
            // What the first lacks, up to the next page where it may resume.
            uint64_t a = vaddr + done;
            size_t chunk = std::min<size_t>(len - done, 4096 - (a & 4095));
            n = second.read(a, out, chunk);
            if (n == 0) break;
        }
        done += n;
    }
    return done;
}

}  // namespace kq
