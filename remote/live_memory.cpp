#include "remote/live_memory.h"

#include <cstring>

namespace kq {
namespace {

std::string hex(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
    return b;
}

// More than the guests at hand have: a bound, not a working limit.
constexpr size_t kMaxCachedPages = 1 << 18;
// Pages a bulk read asks for at once: far more requests than the stub's
// window keeps in flight, and little read twice when a page in it is
// unreadable (the reader resumes after it).
constexpr size_t kBulkPages = 64;

}  // namespace

void LiveMemory::resumed() {
    std::lock_guard g(mu_);
    running_ = true;
    cache_.clear();
}

// Each page in packets of the stub's largest read, all of them in flight
// together. A stub reads a page entirely or not at all (QEMU: "E14"), so
// one failed packet makes its page unreadable.
std::vector<LiveMemory::PagePtr> LiveMemory::fetch(const std::vector<uint64_t>& pages) {
    const size_t chunk = std::min<size_t>(stub_.max_read(), kPage);
    std::vector<std::string> req;
    for (uint64_t p : pages)
        for (size_t off = 0; off < kPage; off += chunk) req.push_back("m" + hex(p + off) + "," + hex(chunk));
    std::vector<std::string> rep;
    {
        std::lock_guard g(stub_.lock());
        rep = stub_.request_all(req);
    }
    std::vector<PagePtr> out;
    size_t i = 0;
    for (size_t n = 0; n < pages.size(); ++n) {
        auto page = std::make_shared<Page>();
        bool ok = true;
        for (size_t off = 0; off < kPage; off += chunk, ++i) {
            auto bytes = ok ? rsp::from_hex(rep[i]) : std::nullopt;
            if (!bytes || bytes->size() != chunk) {
                ok = false;
                continue;
            }
            memcpy(page->data() + off, bytes->data(), chunk);
        }
        out.push_back(ok ? std::move(page) : nullptr);
    }
    fetched_ += pages.size();
    return out;
}

size_t LiveMemory::read(uint64_t vaddr, void* buf, size_t len) {
    return read_pages(vaddr, buf, len, SIZE_MAX, true);
}

size_t LiveMemory::read_bulk(uint64_t vaddr, void* buf, size_t len) {
    return read_pages(vaddr, buf, len, kBulkPages, false);
}

size_t LiveMemory::read_pages(uint64_t vaddr, void* buf, size_t len, size_t batch, bool keep) {
    if (len == 0 || running_) return 0;
    std::lock_guard g(mu_);
    const uint64_t first = vaddr & ~(kPage - 1);
    const uint64_t last = (vaddr + len - 1) & ~(kPage - 1);
    if (last < first) return 0;  // wraps around the address space
    size_t done = 0;
    auto* out = static_cast<uint8_t*>(buf);
    for (uint64_t p = first;;) {
        std::vector<uint64_t> pages, missing;
        for (; pages.size() < batch; p += kPage) {
            pages.push_back(p);
            if (!cache_.count(p)) missing.push_back(p);
            if (p == last) break;
        }
        std::vector<PagePtr> fetched;
        try {
            if (!missing.empty()) fetched = fetch(missing);
        } catch (const Error&) {
            return done;  // the stub went away: unreadable from here, as MemorySource promises
        }
        std::vector<PagePtr> got;
        for (size_t i = 0, f = 0; i < pages.size(); ++i)
            got.push_back(f < missing.size() && missing[f] == pages[i] ? fetched[f++] : cache_[pages[i]]);
        if (keep) {
            if (cache_.size() + missing.size() > kMaxCachedPages) cache_.clear();
            for (size_t i = 0; i < missing.size(); ++i) cache_[missing[i]] = fetched[i];
        }
        for (size_t i = 0; i < pages.size(); ++i) {
            if (!got[i]) return done;
            const size_t off = (vaddr + done) - pages[i];
            const size_t n = std::min<size_t>(kPage - off, len - done);
            memcpy(out + done, got[i]->data() + off, n);
            done += n;
        }
        if (pages.back() == last) return done;
    }
}

bool LiveMemory::write(uint64_t vaddr, const void* buf, size_t len) {
    if (running_) return false;
    std::lock_guard g(mu_);
    std::string reply;
    try {
        std::lock_guard s(stub_.lock());
        reply = stub_.request("M" + hex(vaddr) + "," + hex(len) + ":" + rsp::to_hex(buf, len));
    } catch (const Error&) {
        return false;
    }
    for (uint64_t p = vaddr & ~(kPage - 1); p < vaddr + len; p += kPage) cache_.erase(p);
    return reply == "OK";
}

}  // namespace kq
