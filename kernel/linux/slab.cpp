// Direct-mapped address -> struct page -> (compound head) -> slab -> object.
//
// x86-64 with SPARSEMEM_VMEMMAP: the struct page of physical frame N is
// vmemmap_base + N * sizeof(struct page). A tail page of a compound page
// holds its head's address + 1 in compound_head. A head page with PG_slab
// set is a SLUB slab: `struct slab` overlays it (slab_cache, freelist,
// objects), its objects start at the page's own address, s->size apart,
// each behind s->red_left_pad bytes of red zone.
//
// Free objects are on the slab's freelist and, for a CPU's current slab, on
// that CPU's kmem_cache_cpu freelist. Each free object holds the next one at
// object + s->offset; with CONFIG_SLAB_FREELIST_HARDENED (kmem_cache has a
// `random` member then) that pointer is stored as
// next ^ s->random ^ byteswap(address where it is stored).
#include "kernel/linux/slab.h"

#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "kernel/list_walk.h"

namespace kq {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMaxCompoundPages = 1u << 18;  // 1 GiB: beyond, compound_head is not a head's
constexpr uint64_t kMaxObjectSize = 1u << 24;
constexpr unsigned kObjectsMask = 0x7fff;  // struct slab: `unsigned objects:15`

struct Layout {
    uint64_t page_size, flags, compound_head, refcount;
    std::optional<uint64_t> compound_order;  // in the first tail page
    int pg_slab, pg_head, pg_reserved, pg_lru;
    uint64_t slab_cache, slab_freelist, slab_objects;
    uint64_t kc_cpu_slab, kc_size, kc_object_size, kc_offset, kc_name;
    std::optional<uint64_t> kc_red_left_pad, kc_random;
    uint64_t kcc_freelist, kcc_slab;

    explicit Layout(const LinuxKernel& k) {
        auto& t = k.types();
        page_size = t.size_or_throw("page");
        flags = k.off("page", "flags");
        compound_head = k.off("page", "compound_head");
        refcount = k.off("page", "_refcount");
        compound_order = t.offset("page", "compound_order");
        auto flag = [&](const char* name) {
            auto v = t.enumerator(name);
            if (!v || *v < 0 || *v >= 64) throw Error(std::string("enum pageflags has no ") + name + " in DWARF");
            return static_cast<int>(*v);
        };
        pg_slab = flag("PG_slab");
        pg_head = flag("PG_head");
        pg_reserved = flag("PG_reserved");
        pg_lru = flag("PG_lru");
        slab_cache = k.off("slab", "slab_cache");
        slab_freelist = k.off("slab", "freelist");
        slab_objects = k.off("slab", "objects");
        kc_cpu_slab = k.off("kmem_cache", "cpu_slab");
        kc_size = k.off("kmem_cache", "size");
        kc_object_size = k.off("kmem_cache", "object_size");
        kc_offset = k.off("kmem_cache", "offset");
        kc_name = k.off("kmem_cache", "name");
        kc_red_left_pad = t.offset("kmem_cache", "red_left_pad");  // CONFIG_SLUB_DEBUG
        kc_random = t.offset("kmem_cache", "random");              // CONFIG_SLAB_FREELIST_HARDENED
        kcc_freelist = k.off("kmem_cache_cpu", "freelist");
        kcc_slab = k.off("kmem_cache_cpu", "slab");
    }
};

struct Cache {
    bool ok = false;
    std::string name, problem;
    uint64_t size = 0, object_size = 0, offset = 0, red_left_pad = 0, random = 0, cpu_slab = 0;
};

// The free objects of one slab, or why they could not be read.
struct FreeSet {
    std::set<uint64_t> objects;
    std::string problem;
};

std::string hex(uint64_t v) { return addr_text(v); }

}  // namespace

const char* to_string(SlabObject::State s) {
    switch (s) {
        case SlabObject::State::allocated: return "allocated";
        case SlabObject::State::free: return "free";
        case SlabObject::State::unknown: break;
    }
    return "unknown";
}

struct Slabs::Impl {
    const LinuxKernel& k;
    MemorySource& mem;
    std::optional<Layout> L;
    std::string problem;
    uint64_t direct = 0, vmemmap = 0, max_pfn = 0;
    std::vector<uint64_t> cpu_offsets;
    std::unordered_map<uint64_t, Cache> caches;
    std::unordered_map<uint64_t, FreeSet> free_sets;  // by slab (head page)

    explicit Impl(const LinuxKernel& kernel) : k(kernel), mem(kernel.mem()) {
        try {
            L.emplace(k);
            direct = k.direct_map_base();
            if (!direct) throw Error("page_offset_base unreadable");
            auto vb = k.find_symbol("vmemmap_base");
            if (!vb) throw Error("no vmemmap_base in vmlinux");
            vmemmap = mem.read_u64(*vb).value_or(0);
            if (!vmemmap) throw Error("vmemmap_base unreadable");
            if (auto mp = k.find_symbol("max_pfn")) max_pfn = mem.read_u64(*mp).value_or(0);
            if (auto pco = k.find_symbol("__per_cpu_offset"))
                for (int c = 0; c < k.nr_cpus(); ++c)
                    if (auto o = mem.read_u64(*pco + 8ull * c)) cpu_offsets.push_back(*o);
        } catch (const Error& e) {
            problem = e.what();
            L.reset();
        }
    }

    bool flag(uint64_t flags, int bit) const { return (flags >> bit) & 1; }

    const Cache& cache(uint64_t addr) {
        auto [it, fresh] = caches.try_emplace(addr);
        Cache& c = it->second;
        if (!fresh) return c;
        auto u32 = [&](uint64_t off) { return mem.read_as<uint32_t>(addr + off); };
        auto size = u32(L->kc_size), osize = u32(L->kc_object_size), off = u32(L->kc_offset);
        auto name = mem.read_u64(addr + L->kc_name);
        auto cpu = mem.read_u64(addr + L->kc_cpu_slab);
        if (!size || !osize || !off || !name || !cpu) {
            c.problem = "kmem_cache " + hex(addr) + " unreadable";
            return c;
        }
        c.size = *size, c.object_size = *osize, c.offset = *off, c.cpu_slab = *cpu;
        if (L->kc_red_left_pad) c.red_left_pad = u32(*L->kc_red_left_pad).value_or(~0u);
        if (L->kc_random) c.random = mem.read_u64(addr + *L->kc_random).value_or(0);
        c.name = mem.read_cstr(*name, 64);
        if (c.size == 0 || c.size > kMaxObjectSize || c.object_size > c.size || c.offset + 8 > c.size ||
            c.red_left_pad >= c.size || c.name.empty()) {
            c.problem = "kmem_cache " + hex(addr) + " inconsistent";
            return c;
        }
        c.ok = true;
        return c;
    }

    // Follows one freelist from `first` (a plain pointer) into `out`.
    std::string walk(const Cache& c, uint64_t base, uint64_t objects, uint64_t first, std::set<uint64_t>& out) {
        uint64_t p = first;
        for (uint64_t n = 0; p; ++n) {
            if (n > objects) return "freelist longer than the slab";
            if (p < base + c.red_left_pad || (p - base - c.red_left_pad) % c.size ||
                (p - base - c.red_left_pad) / c.size >= objects)
                return "freelist leaves the slab at " + hex(p);
            if (!out.insert(p).second) return "freelist loops";
            const uint64_t at = p + c.offset;
            auto stored = mem.read_u64(at);
            if (!stored) return "freelist unreadable at " + hex(at);
            p = L->kc_random ? *stored ^ c.random ^ __builtin_bswap64(at) : *stored;
        }
        return {};
    }

    const FreeSet& free_set(uint64_t slab, const Cache& c, uint64_t base, uint64_t objects) {
        auto [it, fresh] = free_sets.try_emplace(slab);
        FreeSet& f = it->second;
        if (!fresh) return f;
        auto first = mem.read_u64(slab + L->slab_freelist);
        if (!first) {
            f.problem = "slab freelist unreadable";
            return f;
        }
        f.problem = walk(c, base, objects, *first, f.objects);
        // A CPU's current slab: its lockless freelist is free too.
        for (uint64_t off : cpu_offsets) {
            if (!f.problem.empty()) break;
            const uint64_t cc = c.cpu_slab + off;
            auto cs = mem.read_u64(cc + L->kcc_slab);
            if (!cs) {
                f.problem = "kmem_cache_cpu unreadable";
                break;
            }
            if (*cs != slab) continue;
            auto cf = mem.read_u64(cc + L->kcc_freelist);
            if (!cf) f.problem = "kmem_cache_cpu freelist unreadable";
            else f.problem = walk(c, base, objects, *cf, f.objects);
        }
        if (cpu_offsets.empty() && f.problem.empty()) f.problem = "per-CPU offsets unreadable";
        return f;
    }

    PageOwner owner(uint64_t vaddr) {
        PageOwner o;
        if (!L) {
            o.what = problem;
            return o;
        }
        if (vaddr < direct) {
            o.what = "not in the direct map";
            return o;
        }
        const uint64_t pfn = (vaddr - direct) / kPage;
        if (max_pfn && pfn >= max_pfn) {
            o.what = "beyond the last page frame (max_pfn)";
            return o;
        }
        const uint64_t page = vmemmap + pfn * L->page_size;
        auto flags = mem.read_u64(page + L->flags);
        auto ch = mem.read_u64(page + L->compound_head);
        if (!flags || !ch) {
            o.what = "struct page " + hex(page) + " unreadable";
            return o;
        }
        uint64_t head = page, head_flags = *flags;
        if (*ch & 1) {
            head = *ch - 1;
            if (head > page || (page - head) % L->page_size || (page - head) / L->page_size >= kMaxCompoundPages) {
                o.what = "struct page " + hex(page) + ": implausible compound head " + hex(head);
                return o;
            }
            auto hf = mem.read_u64(head + L->flags);
            if (!hf || !flag(*hf, L->pg_head)) {
                o.what = "struct page " + hex(page) + ": compound head " + hex(head) + " is no head page";
                return o;
            }
            head_flags = *hf;
        }
        o.page = head;
        const uint64_t head_addr = direct + (head - vmemmap) / L->page_size * kPage;
        uint64_t order = 0;
        if (flag(head_flags, L->pg_head) && L->compound_order)
            order = mem.read_as<uint8_t>(head + L->page_size + *L->compound_order).value_or(0);
        if (!flag(head_flags, L->pg_slab)) return page_kind(o, head, head_flags, order);

        auto cache_addr = mem.read_u64(head + L->slab_cache);
        auto objs = mem.read_as<uint16_t>(head + L->slab_objects);
        if (!cache_addr || !objs) {
            o.what = "slab " + hex(head) + " unreadable";
            return o;
        }
        const Cache& c = cache(*cache_addr);
        if (!c.ok) {
            o.what = c.problem;
            return o;
        }
        const uint64_t objects = *objs & kObjectsMask, bytes = kPage << std::min<uint64_t>(order, 20);
        if (objects == 0 || objects * c.size > bytes) {
            o.what = "slab " + hex(head) + " of " + c.name + ": " + std::to_string(objects) +
                     " objects do not fit its " + std::to_string(bytes) + " bytes";
            return o;
        }
        o.kind = PageOwner::Kind::slab;
        SlabObject& s = o.slab;
        s.cache = c.name;
        s.cache_addr = *cache_addr;
        s.object_size = c.object_size;
        const uint64_t rel = vaddr - head_addr, slot = head_addr + rel / c.size * c.size;
        if (rel / c.size >= objects) {
            o.what = "slack after the last object of a slab of " + c.name;
            return o;
        }
        if (vaddr < slot + c.red_left_pad) {
            o.what = "red zone before an object of " + c.name;
            return o;
        }
        s.object = slot + c.red_left_pad;
        s.offset = vaddr - s.object;
        const FreeSet& f = free_set(head, c, head_addr, objects);
        if (!f.problem.empty()) s.state_note = f.problem;
        else s.state = f.objects.count(s.object) ? SlabObject::State::free : SlabObject::State::allocated;
        return o;
    }

    PageOwner& page_kind(PageOwner& o, uint64_t head, uint64_t flags, uint64_t order) {
        o.kind = PageOwner::Kind::page;
        auto ref = mem.read_as<int32_t>(head + L->refcount);
        o.kernel_data = true;
        if (flag(flags, L->pg_reserved)) o.what = "reserved page";
        else if (ref && *ref == 0) o.what = "free page (reference count 0)", o.kernel_data = false;
        else if (flag(flags, L->pg_lru)) o.what = "page on an LRU list (page cache or anonymous memory)", o.kernel_data = false;
        else if (order) o.what = "order-" + std::to_string(order) + " compound page, not slab";
        else o.what = "page in use, not slab";
        return o;
    }
};

Slabs::Slabs(const LinuxKernel& k) : impl_(std::make_unique<Impl>(k)) {}
Slabs::~Slabs() = default;
PageOwner Slabs::owner(uint64_t vaddr) { return impl_->owner(vaddr); }
const std::string& Slabs::problem() const { return impl_->problem; }

}  // namespace kq
