// Slab attribution (kernel/linux/slab) on the lab's real dumps ($KQ_DUMPS,
// $KQ_VMLINUX): every task_struct is an allocated object of the
// task_struct cache, each module's sect_attrs an allocated kmalloc object,
// the head of a CPU's lockless freelist a free object; any address of the
// direct map is attributed without throwing. Then the same dump with its
// metadata corrupted: unknown, with the reason, never a crash or a hang.
// Skipped without the lab.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <random>

#include "kernel/linux/linux_system.h"
#include "kernel/linux/slab.h"
#include "lab_system.h"

using namespace kq;

namespace {

using State = SlabObject::State;

class SlabLab : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        KQ_NEED_LAB();
        sys_ = &test::lab_system(GetParam());
    }
    LinuxKernel& k() { return sys_->kernel(); }
    uint64_t u64(uint64_t a) { return k().read_u64_or_throw(a, "test word"); }

    // The first object of each CPU's lockless freelist of `cache` (0: empty).
    std::vector<uint64_t> cpu_freelist_heads(uint64_t cache) {
        std::vector<uint64_t> out;
        const uint64_t cpu_slab = u64(cache + k().off("kmem_cache", "cpu_slab"));
        for (int c = 0; c < k().nr_cpus(); ++c) {
            const uint64_t pcpu = u64(k().symbol("__per_cpu_offset") + 8ull * c);
            out.push_back(u64(cpu_slab + pcpu + k().off("kmem_cache_cpu", "freelist")));
        }
        return out;
    }

    LinuxSystem* sys_ = nullptr;
};

TEST_P(SlabLab, TaskStructsAreAllocatedObjectsOfTheirCache) {
    Slabs slabs(k());
    ASSERT_EQ(slabs.problem(), "");
    size_t checked = 0;
    for (const auto& t : sys_->threads()) {
        if (t.task == k().symbol("init_task")) {
            EXPECT_EQ(slabs.owner(t.task).kind, PageOwner::Kind::unknown) << "init_task is in the kernel image";
            continue;
        }
        PageOwner o = slabs.owner(t.task + 0x10);
        ASSERT_EQ(o.kind, PageOwner::Kind::slab) << task_label(t) << ": " << o.what;
        EXPECT_EQ(o.what, "");
        EXPECT_EQ(o.slab.cache, "task_struct") << task_label(t);
        EXPECT_EQ(o.slab.object, t.task);
        EXPECT_EQ(o.slab.offset, 0x10u);
        EXPECT_EQ(o.slab.state, State::allocated) << task_label(t) << ": " << o.slab.state_note;
        ++checked;
    }
    EXPECT_GT(checked, 50u);
}

TEST_P(SlabLab, ModuleSectionAttributesAreAllocatedKmallocObjects) {
    Slabs slabs(k());
    for (const auto& m : sys_->modules()) {
        const uint64_t sa = u64(m.addr + k().off("module", "sect_attrs"));
        PageOwner o = slabs.owner(sa + 0x48);
        ASSERT_EQ(o.kind, PageOwner::Kind::slab) << m.name << ": " << o.what;
        EXPECT_EQ(o.slab.cache.rfind("kmalloc-", 0), 0u) << m.name << ": " << o.slab.cache;
        EXPECT_EQ(o.slab.object, sa) << m.name;
        EXPECT_EQ(o.slab.offset, 0x48u) << m.name;
        EXPECT_GE(o.slab.object_size, 0x48u) << m.name;
        EXPECT_EQ(o.slab.state, State::allocated) << m.name << ": " << o.slab.state_note;
    }
}

TEST_P(SlabLab, CpuFreelistHeadsAreFreeObjects) {
    Slabs slabs(k());
    std::map<uint64_t, std::string> caches;  // caches of objects the lab surely has
    for (const auto& t : sys_->threads())
        if (PageOwner o = slabs.owner(t.task); o.kind == PageOwner::Kind::slab) caches[o.slab.cache_addr] = o.slab.cache;
    for (const auto& m : sys_->modules())
        for (const char* member : {"sect_attrs", "notes_attrs"})
            if (PageOwner o = slabs.owner(u64(m.addr + k().off("module", member))); o.kind == PageOwner::Kind::slab)
                caches[o.slab.cache_addr] = o.slab.cache;
    size_t free_seen = 0;
    for (const auto& [cache, name] : caches)
        for (uint64_t head : cpu_freelist_heads(cache)) {
            if (!head) continue;
            PageOwner o = slabs.owner(head + 8);
            ASSERT_EQ(o.kind, PageOwner::Kind::slab) << name << ": " << o.what;
            EXPECT_EQ(o.slab.cache, name);
            EXPECT_EQ(o.slab.object, head);
            EXPECT_EQ(o.slab.state, State::free) << name << " " << head << ": " << o.slab.state_note;
            ++free_seen;
        }
    std::printf("  %zu caches, %zu CPU freelist heads seen free\n", caches.size(), free_seen);
    EXPECT_GT(free_seen, 0u);
}

// Addresses all over the direct map: each attributed, none throws; the
// kinds seen are printed.
TEST_P(SlabLab, AnyDirectMappedAddressIsAttributed) {
    Slabs slabs(k());
    const uint64_t direct = k().direct_map_base();
    std::mt19937_64 rng(42);
    std::map<std::string, size_t> kinds;
    const auto t0 = std::chrono::steady_clock::now();
    size_t n = 0;
    for (const auto& [a, b] : sys_->dump().memory_ranges())
        for (int i = 0; i < 2000; ++i, ++n) {
            const uint64_t addr = direct + a + rng() % (b - a);
            PageOwner o = slabs.owner(addr & ~7ull);
            const char* kind = o.kind == PageOwner::Kind::slab ? "slab" : o.kind == PageOwner::Kind::page ? "page" : "unknown";
            std::string what = o.kind != PageOwner::Kind::slab ? ": " + o.what
                               : !o.what.empty()             ? ": " + o.what
                                                             : std::string(" ") + to_string(o.slab.state);
            if (o.kind == PageOwner::Kind::slab && o.slab.state == State::unknown && o.what.empty())
                what += " (" + o.slab.state_note + ")";
            ++kinds[kind + what];
            if (o.kind == PageOwner::Kind::slab && o.what.empty()) {
                EXPECT_LE(o.slab.object, addr);
                EXPECT_LT(addr - o.slab.object, o.slab.object_size + 64);  // the object or its metadata after it
            }
        }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("  %zu addresses in %.0f ms:\n", n, ms);
    for (const auto& [kind, count] : kinds) std::printf("    %5zu %s\n", count, kind.c_str());
    EXPECT_GT(kinds["slab allocated"], 0u);
    EXPECT_EQ(slabs.owner(k().symbol("jiffies")).kind, PageOwner::Kind::unknown);
    EXPECT_EQ(slabs.owner(0x1000).kind, PageOwner::Kind::unknown);
}

INSTANTIATE_TEST_SUITE_P(LabDumps, SlabLab, ::testing::Values("kaslr.elf", "nokaslr.elf"),
                         [](const auto& info) { return std::string(info.param).substr(0, std::string(info.param).find('.')); });

// Memory with some words replaced, or unreadable.
class Changed : public MemorySource {
public:
    explicit Changed(MemorySource& inner) : inner_(inner) {}
    std::map<uint64_t, uint64_t> words;  // 8-byte words replaced
    std::vector<Range> holes;            // unreadable ranges

    size_t read(uint64_t vaddr, void* buf, size_t len) override {
        for (const auto& h : holes)
            if (vaddr < h.start + h.size && h.start < vaddr + len) {
                if (vaddr >= h.start) return 0;
                len = h.start - vaddr;
            }
        size_t n = inner_.read(vaddr, buf, len);
        for (auto it = words.lower_bound(vaddr > 7 ? vaddr - 7 : 0); it != words.end() && it->first < vaddr + n; ++it)
            for (unsigned i = 0; i < 8; ++i)
                if (it->first + i >= vaddr && it->first + i < vaddr + n)
                    static_cast<uint8_t*>(buf)[it->first + i - vaddr] = reinterpret_cast<const uint8_t*>(&it->second)[i];
        return n;
    }

private:
    MemorySource& inner_;
};

class SlabBadInput : public ::testing::Test {
protected:
    void SetUp() override {
        KQ_NEED_LAB();
        sys_ = &test::lab_system("kaslr.elf");
        mem_ = std::make_unique<Changed>(sys_->kernel().mem());
        k_ = std::make_unique<LinuxKernel>(*mem_, sys_->vmlinux(), sys_->kernel().types(), sys_->kernel().slide());
        for (const auto& t : sys_->threads())
            if (t.id > 1 && t.name == "kq_sleep") task_ = t.task;
        ASSERT_NE(task_, 0u);
        vmemmap_ = u64(k_->symbol("vmemmap_base"));
        page_ = vmemmap_ + (task_ - k_->direct_map_base()) / 4096 * k_->types().size_or_throw("page");
    }
    uint64_t u64(uint64_t a) { return sys_->kernel().read_u64_or_throw(a, "test word"); }
    // The head page of the task's slab.
    uint64_t head() {
        const uint64_t ch = u64(page_ + k_->off("page", "compound_head"));
        return ch & 1 ? ch - 1 : page_;
    }

    LinuxSystem* sys_ = nullptr;
    std::unique_ptr<Changed> mem_;
    std::unique_ptr<LinuxKernel> k_;
    uint64_t task_ = 0, vmemmap_ = 0, page_ = 0;
};

TEST_F(SlabBadInput, UnreadableOrInconsistentMetadataIsUnknown) {
    struct Case {
        const char* name;
        std::function<void()> corrupt;
        const char* reason;
    };
    const uint64_t slab = head();
    const uint64_t cache = u64(slab + k_->off("slab", "slab_cache"));
    const std::vector<Case> cases = {
        {"struct page unreadable", [&] { mem_->holes.push_back({page_, 64, "page"}); }, "unreadable"},
        {"compound head elsewhere", [&] { mem_->words[page_ + k_->off("page", "compound_head")] = 0x4141414141414141ull; },
         "compound head"},
        {"slab_cache garbage", [&] { mem_->words[slab + k_->off("slab", "slab_cache")] = 0xdead000000000000ull; },
         "unreadable"},
        {"object size zero", [&] { mem_->words[cache + k_->off("kmem_cache", "size")] = 0; }, "inconsistent"},
        {"too many objects", [&] { mem_->words[(slab + k_->off("slab", "objects")) & ~7ull] = ~0ull; }, "do not fit"},
    };
    for (const auto& c : cases) {
        mem_->words.clear();
        mem_->holes.clear();
        c.corrupt();
        Slabs slabs(*k_);
        PageOwner o = slabs.owner(task_);
        EXPECT_EQ(o.kind, PageOwner::Kind::unknown) << c.name << ": " << o.slab.cache;
        EXPECT_NE(o.what.find(c.reason), std::string::npos) << c.name << ": " << o.what;
        std::printf("  %s: %s\n", c.name, o.what.c_str());
    }
}

TEST_F(SlabBadInput, BrokenFreelistLeavesTheStateUnknown) {
    const uint64_t slab = head();
    const uint64_t freelist = k_->off("slab", "freelist");
    // A freelist that leaves the slab, and one that loops.
    for (uint64_t bad : {uint64_t(0x4141414141414140ull), task_}) {
        mem_->words.clear();
        mem_->words[slab + freelist] = bad;
        if (bad == task_) {
            // task_ free, its free pointer (encoded or not) back to itself:
            // whatever it decodes to, the walk ends.
            const uint64_t cache = u64(slab + k_->off("slab", "slab_cache"));
            const uint32_t off = mem_->read_as<uint32_t>(cache + k_->off("kmem_cache", "offset")).value();
            uint64_t enc = task_;
            if (auto r = k_->types().offset("kmem_cache", "random"))
                enc = task_ ^ u64(cache + *r) ^ __builtin_bswap64(task_ + off);
            mem_->words[task_ + off] = enc;
        }
        Slabs slabs(*k_);
        PageOwner o = slabs.owner(task_);
        ASSERT_EQ(o.kind, PageOwner::Kind::slab) << o.what;
        EXPECT_EQ(o.slab.object, task_);
        EXPECT_EQ(o.slab.state, State::unknown);
        EXPECT_NE(o.slab.state_note, "");
        std::printf("  freelist %#llx: %s\n", (unsigned long long)bad, o.slab.state_note.c_str());
    }
}

}  // namespace
