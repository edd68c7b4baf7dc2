// The printk ringbuffer (kernel/printk/printk_ringbuffer.c): a descriptor
// ring (state and data position of each record), an info array parallel
// to it (sequence number, time, level, length) and a text data ring of
// blocks, each an id word followed by the text. Record ids run from the
// descriptor ring's tail_id to its head_id; a descriptor's state_var holds
// its id in the low bits and its state in the top two.
#include "kernel/linux/printk.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace kq {
namespace {

// state_var's top two bits (DESC_FLAGS_SHIFT = BITS_PER_LONG - 2) hold the
// state: reserved 0, committed 1, finalized 2, reusable 3 (enum desc_state,
// whose values the code relies on).
constexpr unsigned kStateShift = 62;
constexpr uint64_t kIdMask = ~(3ull << kStateShift);
constexpr uint64_t kCommitted = 1, kFinalized = 2;

struct PrbLayout {
    uint64_t count_bits, descs, infos, head_id, tail_id;
    uint64_t size_bits, data;
    uint64_t desc_size, state_var, blk_begin, blk_next;
    uint64_t info_size, seq, ts_nsec, text_len, level = 0, caller_id;
    bool level_known = false;

    explicit PrbLayout(const LinuxKernel& k) {
        auto& t = k.types();
        const char* R = "printk_ringbuffer";
        count_bits = k.off(R, "desc_ring.count_bits");
        descs = k.off(R, "desc_ring.descs");
        infos = k.off(R, "desc_ring.infos");
        head_id = k.off(R, "desc_ring.head_id");
        tail_id = k.off(R, "desc_ring.tail_id");
        size_bits = k.off(R, "text_data_ring.size_bits");
        data = k.off(R, "text_data_ring.data");
        desc_size = t.size_or_throw("prb_desc");
        state_var = k.off("prb_desc", "state_var");
        blk_begin = k.off("prb_desc", "text_blk_lpos.begin");
        blk_next = k.off("prb_desc", "text_blk_lpos.next");
        info_size = t.size_or_throw("printk_info");
        seq = k.off("printk_info", "seq");
        ts_nsec = k.off("printk_info", "ts_nsec");
        text_len = k.off("printk_info", "text_len");
        caller_id = k.off("printk_info", "caller_id");
        // `u8 flags:5; u8 level:3;` share a byte: GCC on little-endian x86
        // gives the first-declared field the low bits, so level is the top
        // three. Trusted only when DWARF shows both in one byte.
        auto fl = t.offset("printk_info", "flags"), lv = t.offset("printk_info", "level");
        if (fl && lv && *fl == *lv && !t.member_size("printk_info", "level")) {
            level = *lv;
            level_known = true;
        }
    }
};

uint64_t get(const std::vector<uint8_t>& b, uint64_t off, unsigned size) {
    uint64_t v = 0;
    if (off + size <= b.size()) memcpy(&v, b.data() + off, size);
    return v;
}

}  // namespace

KernelLog read_kernel_log(const LinuxKernel& k) {
    PrbLayout L(k);
    MemorySource& mem = k.mem();
    // `prb` points at the static ring until setup_log_buf() moves it to the
    // dynamic one (log_buf_len=).
    const uint64_t rb = k.read_u64_or_throw(k.symbol("prb"), "prb");
    auto u32 = [&](uint64_t a, const char* what) {
        auto v = mem.read_as<uint32_t>(a);
        if (!v) throw Error(std::string("cannot read the printk ringbuffer's ") + what);
        return *v;
    };
    const uint32_t count_bits = u32(rb + L.count_bits, "desc_ring.count_bits");
    const uint32_t size_bits = u32(rb + L.size_bits, "text_data_ring.size_bits");
    if (count_bits < 1 || count_bits > 24 || size_bits < 4 || size_bits > 30)
        throw Error("printk ringbuffer: implausible sizes (2^" + std::to_string(count_bits) + " descriptors, 2^" +
                    std::to_string(size_bits) + " bytes of text)");
    const uint64_t count = 1ull << count_bits, size = 1ull << size_bits;
    const uint64_t descs = k.read_u64_or_throw(rb + L.descs, "prb descs");
    const uint64_t infos = k.read_u64_or_throw(rb + L.infos, "prb infos");
    const uint64_t data = k.read_u64_or_throw(rb + L.data, "prb text data");
    const uint64_t head = k.read_u64_or_throw(rb + L.head_id, "prb head_id") & kIdMask;
    const uint64_t tail = k.read_u64_or_throw(rb + L.tail_id, "prb tail_id") & kIdMask;

    std::vector<uint8_t> d(count * L.desc_size), in(count * L.info_size), text(size);
    KernelLog log;
    if (mem.read(descs, d.data(), d.size()) != d.size()) throw Error("cannot read the printk descriptor ring");
    if (mem.read(infos, in.data(), in.size()) != in.size()) throw Error("cannot read the printk info records");
    if (size_t got = mem.read(data, text.data(), text.size()); got != text.size()) {
        log.warnings.push_back("printk text ring readable up to " + std::to_string(got) + " of " +
                               std::to_string(size) + " bytes");
        text.resize(got);
    }

    const uint64_t span = (head - tail) & kIdMask;
    if (span >= count) throw Error("printk ringbuffer: head and tail ids are " + std::to_string(span) + " apart in a ring of " +
                                   std::to_string(count));
    for (uint64_t n = 0; n <= span; ++n) {
        const uint64_t id = (tail + n) & kIdMask, slot = id % count;
        const uint64_t sv = get(d, slot * L.desc_size + L.state_var, 8);
        const uint64_t state = sv >> kStateShift;
        // Reserved (being written) or reusable (being dropped) records are
        // not part of the log, nor is a slot that already holds a later id.
        if ((sv & kIdMask) != id || (state != kCommitted && state != kFinalized)) {
            if ((sv & kIdMask) != id) ++log.lost;
            continue;
        }
        const uint64_t begin = get(d, slot * L.desc_size + L.blk_begin, 8);
        const uint64_t next = get(d, slot * L.desc_size + L.blk_next, 8);
        const uint64_t info = slot * L.info_size;
        LogRecord r;
        r.seq = get(in, info + L.seq, 8);
        r.ts_nsec = get(in, info + L.ts_nsec, 8);
        r.caller_id = static_cast<uint32_t>(get(in, info + L.caller_id, 4));
        if (L.level_known) r.level = static_cast<int>(get(in, info + L.level, 1) >> 5);
        const uint64_t text_len = get(in, info + L.text_len, 2);
        // A data-less record (lpos with bit 0 set, or begin == next) has no text.
        if (!(begin & 1) && begin != next) {
            uint64_t at, len;
            if ((begin >> size_bits) == (next >> size_bits)) {
                at = begin & (size - 1);
                len = next - begin;
            } else if (((begin + size) >> size_bits) == (next >> size_bits)) {
                at = 0;  // the block wrapped: it lies at the ring's start
                len = next & (size - 1);
            } else {
                ++log.lost;
                continue;
            }
            if (len < 8 || at + len > text.size()) {
                ++log.lost;
                continue;
            }
            len = std::min<uint64_t>(len - 8, text_len);  // skip the block's id word
            r.text.assign(reinterpret_cast<const char*>(text.data() + at + 8), len);
        }
        while (!r.text.empty() && r.text.back() == '\n') r.text.pop_back();
        log.records.push_back(std::move(r));
    }
    std::sort(log.records.begin(), log.records.end(),
              [](const LogRecord& a, const LogRecord& b) { return a.seq < b.seq; });
    return log;
}

std::string format_log_record(const LogRecord& r) {
    char prefix[40];
    snprintf(prefix, sizeof prefix, "[%5llu.%06llu] ", static_cast<unsigned long long>(r.ts_nsec / 1000000000),
             static_cast<unsigned long long>(r.ts_nsec % 1000000000 / 1000));
    std::string out;
    size_t from = 0;
    do {
        size_t nl = r.text.find('\n', from);
        out += prefix;
        out += r.text.substr(from, nl == std::string::npos ? std::string::npos : nl - from);
        out += '\n';
        from = nl == std::string::npos ? std::string::npos : nl + 1;
    } while (from != std::string::npos && from < r.text.size());
    return out;
}

}  // namespace kq
