// A MemorySource over a few byte ranges the test writes, for unit tests.
#pragma once
#include <cstring>
#include <map>
#include <vector>

#include "vmcore/memory_source.h"

namespace kq::test {

class FixtureMemory : public MemorySource {
public:
    void put(uint64_t addr, const void* data, size_t len) {
        auto& r = regions_[addr];
        r.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + len);
    }
    void put_u64(uint64_t addr, uint64_t v) { put(addr, &v, 8); }

    size_t read(uint64_t vaddr, void* buf, size_t len) override {
        size_t done = 0;
        while (done < len) {
            uint64_t a = vaddr + done;
            auto it = regions_.upper_bound(a);
            if (it == regions_.begin()) break;
            --it;
            uint64_t off = a - it->first;
            if (off >= it->second.size()) break;
            size_t n = std::min(len - done, it->second.size() - off);
            memcpy(static_cast<uint8_t*>(buf) + done, it->second.data() + off, n);
            done += n;
        }
        return done;
    }

private:
    std::map<uint64_t, std::vector<uint8_t>> regions_;
};

}  // namespace kq::test
