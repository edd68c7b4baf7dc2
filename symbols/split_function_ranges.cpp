#include "symbols/split_function_ranges.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "symbols/elf_image.h"
#include "vmcore/file_util.h"
#include "vmcore/memory_source.h"

namespace kq {
namespace {

constexpr std::string_view kColdSuffix = ".cold";

enum RangeListEntry : uint8_t {
    kEndOfList = 0,
    kBaseAddressx = 1,
    kStartxEndx = 2,
    kStartxLength = 3,
    kOffsetPair = 4,
    kBaseAddress = 5,
    kStartEnd = 6,
    kStartLength = 7,
};

class Cursor {
public:
    Cursor(std::span<uint8_t> d, size_t pos, size_t end) : d_(d), pos_(pos), end_(end) {}
    size_t pos() const { return pos_; }
    bool done() const { return pos_ >= end_; }
    uint8_t u8() {
        need(1);
        return d_[pos_++];
    }
    uint64_t fixed(size_t n) {
        need(n);
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i) v |= uint64_t(d_[pos_ + i]) << (8 * i);
        pos_ += n;
        return v;
    }
    uint64_t uleb() {
        uint64_t v = 0;
        for (unsigned shift = 0;; shift += 7) {
            uint8_t b = u8();
            if (shift < 64) v |= uint64_t(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
        }
    }
    void skip(size_t n) {
        need(n);
        pos_ += n;
    }

private:
    void need(size_t n) const {
        if (pos_ + n > end_) throw Error(".debug_rnglists: entry runs past its table");
    }
    std::span<uint8_t> d_;
    size_t pos_, end_;
};

struct Entry {
    uint8_t kind;
    size_t payload;      // offset of the operands
    size_t payload_len;  // their encoded size
    uint64_t begin;
    uint64_t base;  // the base address an offset pair is relative to
};

void put_fixed(std::span<uint8_t> d, size_t pos, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) d[pos + i] = uint8_t(v >> (8 * i));
}

// ULEB128 of v in exactly n bytes (padding with continuation bytes), if it fits.
bool put_uleb(std::span<uint8_t> d, size_t pos, uint64_t v, size_t n) {
    if (n == 0 || (7 * n < 64 && (v >> (7 * n)) != 0)) return false;
    for (size_t i = 0; i < n; ++i, v >>= 7) d[pos + i] = uint8_t((v & 0x7f) | (i + 1 < n ? 0x80 : 0));
    return true;
}

size_t uleb_len(std::span<uint8_t> d, size_t pos) {
    size_t n = 1;
    while (d[pos + n - 1] & 0x80) ++n;
    return n;
}

// Rewrites the cold entries of one list; returns how many.
size_t collapse_list(std::span<uint8_t> d, const std::vector<Entry>& list, size_t addr_size,
                     const std::unordered_map<uint64_t, uint64_t>& hot_of_cold) {
    std::unordered_set<uint64_t> begins;
    for (const auto& e : list) begins.insert(e.begin);
    size_t n = 0;
    for (const auto& e : list) {
        auto it = hot_of_cold.find(e.begin);
        if (it == hot_of_cold.end() || !begins.count(it->second)) continue;
        const uint64_t hot = it->second;
        const size_t p = e.payload;
        if (e.kind == kStartLength) {
            put_fixed(d, p, hot, addr_size);
            put_uleb(d, p + addr_size, 0, e.payload_len - addr_size);
        } else if (e.kind == kStartEnd) {
            put_fixed(d, p, hot, addr_size);
            put_fixed(d, p + addr_size, hot, addr_size);
        } else if (e.kind == kOffsetPair && hot >= e.base) {
            const size_t first = uleb_len(d, p);
            std::vector<uint8_t> save(d.begin() + long(p), d.begin() + long(p + e.payload_len));
            if (!put_uleb(d, p, hot - e.base, first) || !put_uleb(d, p + first, hot - e.base, e.payload_len - first)) {
                std::copy(save.begin(), save.end(), d.begin() + long(p));
                continue;
            }
        } else {
            continue;
        }
        ++n;
    }
    return n;
}

}  // namespace

std::vector<SplitFunction> split_functions(const ElfImage& img) {
    std::vector<SplitFunction> out;
    for (const auto& s : img.symbols()) {
        if (s.type != STT_FUNC || s.name.size() <= kColdSuffix.size() || !s.name.ends_with(kColdSuffix)) continue;
        const ElfSymbol* hot = img.symbol(std::string_view(s.name).substr(0, s.name.size() - kColdSuffix.size()));
        if (hot && hot->type == STT_FUNC && hot->value != s.value) out.push_back({hot->value, s.value});
    }
    return out;
}

size_t collapse_cold_ranges(std::span<uint8_t> d, const std::vector<SplitFunction>& fns) {
    std::unordered_map<uint64_t, uint64_t> hot_of_cold;
    for (const auto& f : fns) hot_of_cold.emplace(f.cold, f.hot);
    size_t rewritten = 0;
    size_t table = 0;
    while (table + 4 <= d.size()) {
        Cursor h(d, table, d.size());
        uint64_t unit_length = h.fixed(4);
        size_t offset_size = 4;
        if (unit_length == 0xffffffff) {
            unit_length = h.fixed(8);
            offset_size = 8;
        }
        if (unit_length > d.size() - h.pos()) throw Error(".debug_rnglists: table length past the section");
        const size_t end = h.pos() + unit_length;
        const uint16_t version = uint16_t(h.fixed(2));
        const size_t addr_size = h.u8();
        h.u8();  // segment selector size
        const uint64_t offsets = h.fixed(4);
        if (version != 5 || (addr_size != 4 && addr_size != 8))
            throw Error(".debug_rnglists: unsupported table (version " + std::to_string(version) + ")");
        h.skip(offsets * offset_size);

        Cursor c(d, h.pos(), end);
        std::vector<Entry> list;
        bool resolvable = true;  // no entries through .debug_addr
        uint64_t base = 0;
        while (!c.done()) {
            const uint8_t kind = c.u8();
            const size_t p = c.pos();
            uint64_t begin = 0;
            switch (kind) {
                case kEndOfList:
                    if (resolvable) rewritten += collapse_list(d, list, addr_size, hot_of_cold);
                    list.clear();
                    resolvable = true;
                    base = 0;
                    continue;
                case kBaseAddressx: c.uleb(); resolvable = false; continue;
                case kStartxEndx:
                case kStartxLength: c.uleb(); c.uleb(); resolvable = false; continue;
                case kBaseAddress: base = c.fixed(addr_size); continue;
                case kOffsetPair: begin = base + c.uleb(); c.uleb(); break;
                case kStartEnd: begin = c.fixed(addr_size); c.fixed(addr_size); break;
                case kStartLength: begin = c.fixed(addr_size); c.uleb(); break;
                default: throw Error(".debug_rnglists: unknown entry kind " + std::to_string(kind));
            }
            list.push_back({kind, p, c.pos() - p, begin, base});
        }
        table = end;
    }
    return rewritten;
}

size_t write_collapsed_copy(const ElfImage& img, const std::string& out_path) {
    const ElfSection* sec = img.section(".debug_rnglists");
    if (!sec || (sec->flags & SHF_COMPRESSED) || sec->type == SHT_NOBITS) return 0;
    auto bytes = img.section_bytes(*sec);
    std::vector<uint8_t> patched(bytes.begin(), bytes.end());
    const size_t n = collapse_cold_ranges(patched, split_functions(img));
    if (n == 0) return 0;

    auto fail = [&](const std::string& what) {
        return Error("cannot write " + out_path + ": " + what + ": " + std::strerror(errno));
    };
    UniqueFd in(::open(img.path().c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!in || ::fstat(in.get(), &st) != 0) throw fail("cannot read " + img.path());
    std::random_device rd;
    const std::string tmp = out_path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
    UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!out) throw fail("cannot create " + tmp);
    bool ok = true;
    for (off_t off = 0; ok && off < st.st_size;) {
        ssize_t k = ::copy_file_range(in.get(), &off, out.get(), nullptr, size_t(st.st_size - off), 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) ok = false;
    }
    if (!ok && errno == EXDEV) {  // older kernels: copy through a buffer
        std::vector<char> buf(1 << 20);
        ok = true;
        for (uint64_t off = 0; ok && off < uint64_t(st.st_size);) {
            size_t k = pread_full(in.get(), buf.data(), buf.size(), off);
            ok = k > 0 && pwrite_full(out.get(), buf.data(), k, off);
            off += k;
        }
    }
    if (!ok || !pwrite_full(out.get(), patched.data(), patched.size(), sec->offset) || ::close(out.release()) != 0 ||
        ::rename(tmp.c_str(), out_path.c_str()) != 0) {
        Error e = fail("copying " + img.path());
        ::unlink(tmp.c_str());
        throw e;
    }
    return n;
}

}  // namespace kq
