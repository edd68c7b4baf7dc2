#include "unwinder/code_memory.h"

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
    size_t done = 0;
    while (done < len) {
        auto* out = static_cast<uint8_t*>(buf) + done;
        size_t n = primary_.read(vaddr + done, out, len - done);
        if (n == 0) {
            // One unreadable byte at most per round: fall back for what the
            // primary lacks, up to the next page where it may resume.
            uint64_t a = vaddr + done;
            size_t chunk = std::min<size_t>(len - done, 4096 - (a & 4095));
            n = fallback_.read(a, out, chunk);
            if (n == 0) break;
        }
        done += n;
    }
    return done;
}

}  // namespace kq
