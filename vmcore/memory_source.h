// Kernel virtual memory, whatever holds it: a dump file, a live stub, a fixture.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace kq {

// Input that cannot be used at all (not a dump, wrong kernel, missing file).
// Its message is one line meant for the user.
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class MemorySource {
public:
    virtual ~MemorySource() = default;

    // Reads kernel virtual memory. Returns the number of bytes read; a short
    // count means the byte after them is unreadable (absent from the dump,
    // unmapped). Never throws for unreadable memory.
    virtual size_t read(uint64_t vaddr, void* buf, size_t len) = 0;
    // The same bytes, for one pass over much memory (the reference scan): a
    // source that caches what it reads keeps none of it.
    virtual size_t read_bulk(uint64_t vaddr, void* buf, size_t len) { return read(vaddr, buf, len); }

    // True for a running kernel: memory can change between reads.
    virtual bool live() const { return false; }

    bool read_exact(uint64_t vaddr, void* buf, size_t len) { return read(vaddr, buf, len) == len; }

    template <class T>
    std::optional<T> read_as(uint64_t vaddr) {
        T v;
        if (!read_exact(vaddr, &v, sizeof v)) return std::nullopt;
        return v;
    }
    std::optional<uint64_t> read_u64(uint64_t vaddr) { return read_as<uint64_t>(vaddr); }

    // A NUL-terminated string of at most max bytes (shorter if unreadable).
    std::string read_cstr(uint64_t vaddr, size_t max = 256) {
        std::string s(max, '\0');
        s.resize(read(vaddr, s.data(), max));
        if (auto nul = s.find('\0'); nul != std::string::npos) s.resize(nul);
        return s;
    }
};

}  // namespace kq
