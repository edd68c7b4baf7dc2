// A live kernel's memory read through its GDB stub: whole pages, several
// 'm' requests in flight, cached until the kernel runs again (bulk reads,
// one pass over much memory, are not cached).
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "remote/stub_connection.h"
#include "vmcore/memory_source.h"

namespace kq {

class LiveMemory : public MemorySource {
public:
    explicit LiveMemory(StubConnection& stub) : stub_(stub) {}

    // Unreadable (unmapped) pages give short counts, as a dump's holes do.
    // While the kernel runs nothing is read (a stub answers nothing then):
    // 0 bytes.
    size_t read(uint64_t vaddr, void* buf, size_t len) override;
    // Pages already cached are used, the others read in batches and not
    // kept: a scan of all of memory leaves the cache as it was.
    size_t read_bulk(uint64_t vaddr, void* buf, size_t len) override;
    bool live() const override { return true; }

    // The kernel is about to run: what is cached may be stale after.
    void resumed();
    void stopped() { running_ = false; }
    bool running() const { return running_; }

    // Writes through the stub ('M'), the pages dropped from the cache.
    // Only for commands that say they write; false if the stub refused.
    bool write(uint64_t vaddr, const void* buf, size_t len);

    uint64_t pages_fetched() const { return fetched_; }

private:
    static constexpr uint64_t kPage = 4096;
    using Page = std::array<uint8_t, kPage>;
    using PagePtr = std::shared_ptr<const Page>;  // null: unreadable
    std::vector<PagePtr> fetch(const std::vector<uint64_t>& pages);
    // Page by page, `batch` pages fetched at once, those fetched cached if
    // `keep`; short at the first unreadable page.
    size_t read_pages(uint64_t vaddr, void* buf, size_t len, size_t batch, bool keep);

    StubConnection& stub_;
    std::mutex mu_;
    std::unordered_map<uint64_t, PagePtr> cache_;  // page address -> bytes
    std::atomic<bool> running_{false};
    std::atomic<uint64_t> fetched_{0};
};

}  // namespace kq
