// What holds a direct-mapped kernel address, as the page allocator and SLUB
// record it: the struct page behind the address (vmemmap), and for a slab
// page the kmem_cache, the object and whether that object is free.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "kernel/linux/linux_kernel.h"

namespace kq {

struct SlabObject {
    enum class State { allocated, free, unknown };
    std::string cache;         // kmem_cache.name ("kmalloc-64", "vmap_area")
    uint64_t cache_addr = 0;   // the struct kmem_cache
    uint64_t object = 0;       // the object's first byte
    uint64_t offset = 0;       // of the address inside the object
    uint64_t object_size = 0;  // kmem_cache.object_size
    State state = State::unknown;
    std::string state_note;    // why the state is unknown ("" otherwise)
};

const char* to_string(SlabObject::State s);

struct PageOwner {
    enum class Kind {
        slab,     // an object (or the slack) of a slab page: `slab` says which
        page,     // a page that is not a slab page: `what` says what is known
        unknown,  // not in the direct map, or its metadata is unreadable or inconsistent: `what` says why
    };
    Kind kind = Kind::unknown;
    uint64_t page = 0;  // the struct page (the head page of a compound page)
    std::string what;   // page: "free page", "reserved page" ...; unknown: why; slab: "" or "slack after the last object"
    bool kernel_data = false;  // page: allocated, and not user data on an LRU list (page cache, anonymous)
    SlabObject slab;    // kind == slab and what == ""
};

// Reads struct pages and SLUB metadata on demand from the kernel's memory;
// remembers each slab's free objects, so attributing many addresses of one
// slab walks its freelists once. Layouts from DWARF; every walk is bounded.
class Slabs {
public:
    explicit Slabs(const LinuxKernel& k);
    ~Slabs();

    // What holds `vaddr` (an address in the direct map). Never throws: bad
    // or missing metadata gives Kind::unknown with the reason.
    PageOwner owner(uint64_t vaddr);

    // "", or why no address can be attributed (a layout missing from DWARF,
    // vmemmap_base unreadable ...).
    const std::string& problem() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace kq
