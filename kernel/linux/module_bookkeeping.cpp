// Where Linux 6.x keeps its records of a loaded module:
//
// - struct module (__this_module, in the module's data): linked on the
//   `modules` list and the mod_tree latch tree, its mkobj kobject is the
//   sysfs parent of its attributes and the kernfs nodes' priv. Anything
//   pointing into it is kernel bookkeeping (or an owner field, which the
//   refcount accounts for).
// - mod->sect_attrs (struct module_sect_attrs + nsections module_sect_attr:
//   each `address` a section start), mod->notes_attrs (struct
//   module_notes_attrs + notes bin_attribute: each `private` a note),
//   mod->mkobj.mp (struct module_param_attrs + num param_attribute: the
//   parameter and its name in the module): kmalloc'ed, one object each.
//   Another module keeps the addresses of its init code after freeing it
//   (struct module `init`, its sect_attrs, its __mcount_loc call sites):
//   where this module reuses that memory, those words point into it.
// - the vmap_area (va_start) and vm_struct (addr) of the module's memory,
//   found by descending vmap_area_root, ordered by va_start; and the
//   va_end of the area just below it, an exclusive end equal to the
//   module's base.
// - static calls: each of the module's static_call_site names its key;
//   a key with modules chains struct static_call_mod {next, mod, sites},
//   one per module calling through it.
// - ftrace: ftrace_pages_start chains struct ftrace_page, each with
//   `index` struct dyn_ftrace records whose `ip` is a traceable call site,
//   in PAGE_SIZE << order zeroed bytes of its own. Removing the records of
//   freed init code moves the later ones down and leaves stale copies past
//   `index`.
// - mod_tree.addr_min/addr_max bound all module memory; cur_orc_ip_table
//   and cur_orc_table stay pointed at the last module whose ORC tables the
//   loader sorted.
#include "kernel/linux/module_bookkeeping.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "kernel/list_walk.h"

namespace kq {
namespace {

constexpr int kMaxTreeDepth = 128;
constexpr size_t kMaxFtracePages = 1u << 16;
constexpr uint64_t kMaxFtraceRecords = 1u << 22;
constexpr uint64_t kMaxObjectBytes = 1u << 22;
constexpr uint64_t kPage = 4096;
constexpr int32_t kMaxFtraceOrder = 10;  // MAX_ORDER
constexpr uint32_t kMaxStaticCallSites = 1u << 16;
constexpr size_t kMaxStaticCallMods = 1u << 12;  // modules on one key
constexpr uint32_t kMaxCallSites = 1u << 20;

class Finder {
public:
    Finder(const LinuxKernel& k, const Module& m, const std::vector<Module>& all)
        : k_(k), mem_(k.mem()), m_(m), all_(all) {}

    ModuleBookkeeping run() {
        auto& t = k_.types();
        out_.module_struct = {m_.addr, t.size("module").value_or(0), "struct module of " + m_.name};
        if (!out_.module_struct.size) out_.problems.push_back("sizeof(struct module) not in DWARF");
        step("section attributes", [&] { attrs("sect_attrs", "module_sect_attrs", "nsections", "attrs", "module_sect_attr", "sections"); });
        step("note attributes", [&] { attrs("notes_attrs", "module_notes_attrs", "notes", "attrs", "bin_attribute", "notes"); });
        step("parameter attributes", [&] { attrs("mkobj.mp", "module_param_attrs", "num", "attrs", "param_attribute", "parameters"); });
        step("other modules' freed init code", [&] { freed_init_code(); });
        step("vmap areas", [&] { vmap_areas(); });
        step("static calls", [&] { static_calls(); });
        step("ftrace records", [&] { ftrace(); });
        step("loader state", [&] { loader_words(); });
        return std::move(out_);
    }

private:
    template <class F>
    void step(const char* what, F&& f) {
        try {
            f();
        } catch (const Error& e) {
            out_.problems.push_back(std::string(what) + ": " + e.what());
        }
    }

    void add(uint64_t start, uint64_t size, std::string what) { out_.objects.push_back({start, size, std::move(what)}); }

    // A header struct followed by `count` elements, pointed to by a member
    // of struct module `mod` (0: none).
    uint64_t attr_block(uint64_t mod, const char* member, const char* type, const char* count, uint32_t& n) {
        const uint64_t p = k_.read_u64_or_throw(mod + k_.off("module", member), std::string("module.") + member);
        if (!p) return 0;
        n = mem_.read_as<uint32_t>(p + k_.off(type, count)).value_or(~0u);
        if (n == ~0u || n > kMaxObjectBytes / 8) throw Error(std::string(type) + " at " + addr_text(p) + " unreadable or implausible");
        return p;
    }

    void attrs(const char* member, const char* type, const char* count, const char* array, const char* elem,
               const char* noun) {
        uint32_t n = 0;
        const uint64_t p = attr_block(m_.addr, member, type, count, n);
        if (!p) return;
        const uint64_t size = k_.off(type, array) + uint64_t(n) * k_.types().size_or_throw(elem);
        add(p, size, std::string(member) + " of " + m_.name + " (" + std::to_string(n) + " " + noun + ")");
    }

    // Another module's records of its own init code, which it freed after
    // its init ran: in its struct module `init` (the init function), its
    // sect_attrs (the init sections) and its ftrace call site list
    // (__mcount_loc). Where that memory now belongs to this module, those
    // words point into it; nothing else of a loaded module can (live module
    // memory does not overlap).
    void freed_init_code() {
        const uint64_t attrs = k_.off("module_sect_attrs", "attrs"), attr_size = k_.types().size_or_throw("module_sect_attr"),
                       address = k_.off("module_sect_attr", "address"), name = k_.off("module_sect_attr", "battr.attr.name"),
                       init = k_.off("module", "init");
        const auto callsites = k_.types().offset("module", "ftrace_callsites"),
                   ncallsites = k_.types().offset("module", "num_ftrace_callsites");
        const std::string freed = ", freed memory " + m_.name + " now occupies";
        for (const auto& o : all_) {
            if (o.addr == m_.addr) continue;
            if (auto v = mem_.read_u64(o.addr + init); v && m_.contains(*v))
                add(o.addr + init, 8, "init of " + o.name + ": its init function" + freed);
            uint32_t n = 0;
            const uint64_t sa = attr_block(o.addr, "sect_attrs", "module_sect_attrs", "nsections", n);
            for (uint32_t i = 0; sa && i < n; ++i) {
                const uint64_t a = sa + attrs + i * attr_size;
                auto v = mem_.read_u64(a + address);
                if (!v) throw Error("sect_attrs of " + o.name + " unreadable at " + addr_text(a));
                if (!m_.contains(*v)) continue;
                const std::string section = mem_.read_cstr(mem_.read_u64(a + name).value_or(0), 64);
                add(a + address, 8, "sect_attrs of " + o.name + ": its " + (section.empty() ? "section" : section) + freed);
            }
            if (!callsites || !ncallsites) continue;
            const uint64_t cs = mem_.read_u64(o.addr + *callsites).value_or(0);
            const uint32_t count = mem_.read_as<uint32_t>(o.addr + *ncallsites).value_or(0);
            if (!cs || !count || count > kMaxCallSites) continue;
            std::vector<uint64_t> sites(count);
            if (!mem_.read_exact(cs, sites.data(), count * 8ull)) throw Error("ftrace call sites of " + o.name + " unreadable");
            for (uint32_t i = 0; i < count; ++i)
                if (m_.contains(sites[i]))
                    add(cs + i * 8ull, 8, "ftrace call sites (__mcount_loc) of " + o.name + ": one in its init code" + freed);
        }
    }

    // The vmap_area of `root` (an rb_root) holding `addr`, or 0.
    uint64_t find_area(uint64_t root, uint64_t addr) {
        const uint64_t node_off = k_.off("vmap_area", "rb_node"), start = k_.off("vmap_area", "va_start"),
                       end = k_.off("vmap_area", "va_end"), left = k_.off("rb_node", "rb_left"),
                       right = k_.off("rb_node", "rb_right");
        uint64_t node = k_.read_u64_or_throw(root + k_.off("rb_root", "rb_node"), "vmap area tree");
        for (int depth = 0; node; ++depth) {
            if (depth >= kMaxTreeDepth) throw Error("vmap area tree deeper than " + std::to_string(kMaxTreeDepth));
            const uint64_t va = node - node_off;
            const uint64_t s = k_.read_u64_or_throw(va + start, "vmap_area"), e = k_.read_u64_or_throw(va + end, "vmap_area");
            if (addr < s) node = k_.read_u64_or_throw(node + left, "vmap area tree");
            else if (addr >= e) node = k_.read_u64_or_throw(node + right, "vmap area tree");
            else return va;
        }
        return 0;
    }

    void vmap_areas() {
        // Each allocation's base: the lowest address of its core or init layout.
        std::vector<uint64_t> bases;
        for (const bool init : {false, true}) {
            uint64_t lo = 0;
            for (const auto& r : m_.ranges)
                if (r.what.starts_with("init ") == init && (!lo || r.start < lo)) lo = r.start;
            if (lo) bases.push_back(lo);
        }
        const uint64_t busy = k_.symbol("vmap_area_root");
        const uint64_t va_end = k_.off("vmap_area", "va_end"), va_vm = k_.off("vmap_area", "vm");
        const uint64_t va_size = k_.types().size_or_throw("vmap_area"), vm_size = k_.types().size_or_throw("vm_struct");
        for (uint64_t base : bases) {
            const std::string of = m_.name + "'s memory at " + addr_text(base);
            if (uint64_t va = find_area(busy, base); va && k_.read_u64(va + k_.off("vmap_area", "va_start")) == base) {
                add(va, va_size, "vmap_area of " + of);
                const uint64_t vm = k_.read_u64(va + va_vm).value_or(0);
                if (vm && k_.read_u64(vm + k_.off("vm_struct", "addr")) == base) add(vm, vm_size, "vm_struct of " + of);
                else out_.problems.push_back("no vm_struct for " + of);
            } else {
                out_.problems.push_back("no vmap_area starts at " + addr_text(base));
            }
            // The area just below ends where the module begins, whether busy,
            // free or waiting to be purged.
            for (const char* root : {"vmap_area_root", "free_vmap_area_root", "purge_vmap_area_root"}) {
                auto r = k_.find_symbol(root);
                if (!r) continue;
                if (uint64_t below = find_area(*r, base - 1); below && k_.read_u64(below + va_end) == base)
                    add(below + va_end, 8, std::string("va_end of the vmap_area below ") + of + " (" + root +
                                               "): an end address");
            }
        }
    }

    void static_calls() {
        auto sites_off = k_.types().offset("module", "static_call_sites");
        if (!sites_off) return;  // a kernel without inline static calls
        const uint64_t sites = k_.read_u64_or_throw(m_.addr + *sites_off, "module.static_call_sites");
        const uint32_t n = mem_.read_as<uint32_t>(m_.addr + k_.off("module", "num_static_call_sites")).value_or(~0u);
        if (!sites || !n) return;
        if (n > kMaxStaticCallSites) throw Error("implausible static call site count " + std::to_string(n));
        const uint64_t site_size = k_.types().size_or_throw("static_call_site"), key_off = k_.off("static_call_site", "key");
        std::vector<uint8_t> buf(n * site_size);
        if (!mem_.read_exact(sites, buf.data(), buf.size())) throw Error("static call sites unreadable at " + addr_text(sites));
        // site->key is relative to itself; its low bits are flags, free
        // because keys (two pointers) are 8-byte aligned.
        std::set<uint64_t> keys;
        for (uint32_t i = 0; i < n; ++i) {
            int32_t rel;
            memcpy(&rel, buf.data() + i * site_size + key_off, 4);
            keys.insert((sites + i * site_size + key_off + int64_t(rel)) & ~7ull);
        }
        const uint64_t mods = k_.off("static_call_key", "mods"), next = k_.off("static_call_mod", "next"),
                       mod = k_.off("static_call_mod", "mod"), size = k_.types().size_or_throw("static_call_mod");
        for (uint64_t key : keys) {
            const uint64_t first = k_.read_u64_or_throw(key + mods, "static_call_key");
            if (first & 1) continue;  // vmlinux's own sites only: no module
            size_t count = 0;
            for (uint64_t scm = first; scm; scm = k_.read_u64_or_throw(scm + next, "static_call_mod")) {
                if (++count > kMaxStaticCallMods) throw Error("static_call_mod list of key " + addr_text(key) + " too long");
                if (k_.read_u64(scm + mod) == m_.addr) {
                    add(scm, size, "static_call_mod of " + m_.name + " (its sites of static call key " + addr_text(key) + ")");
                    break;
                }
            }
        }
    }

    void ftrace() {
        auto start = k_.find_symbol("ftrace_pages_start");
        if (!start) return;  // a kernel without dynamic ftrace
        const uint64_t next = k_.off("ftrace_page", "next"), records = k_.off("ftrace_page", "records"),
                       index = k_.off("ftrace_page", "index"), order = k_.off("ftrace_page", "order"),
                       ip = k_.off("dyn_ftrace", "ip");
        const uint64_t rec_size = k_.types().size_or_throw("dyn_ftrace");
        if (rec_size < ip + 8) throw Error("implausible sizeof(struct dyn_ftrace)");
        uint64_t pg = k_.read_u64_or_throw(*start, "ftrace_pages_start"), total = 0;
        std::vector<uint8_t> buf;
        for (size_t n = 0; pg; ++n) {
            if (n >= kMaxFtracePages) throw Error("more than " + std::to_string(kMaxFtracePages) + " ftrace pages");
            const uint64_t recs = k_.read_u64_or_throw(pg + records, "ftrace_page");
            const int32_t count = mem_.read_as<int32_t>(pg + index).value_or(-1);
            const int32_t pg_order = mem_.read_as<int32_t>(pg + order).value_or(-1);
            if (count < 0 || (total += count) > kMaxFtraceRecords || pg_order < 0 || pg_order > kMaxFtraceOrder ||
                uint64_t(count) * rec_size > (kPage << pg_order))
                throw Error("ftrace page " + addr_text(pg) + " implausible");
            buf.resize(uint64_t(count) * rec_size);
            if (!mem_.read_exact(recs, buf.data(), buf.size())) throw Error("ftrace records at " + addr_text(recs) + " unreadable");
            for (int32_t i = 0; i < count; ++i) {
                uint64_t v;
                memcpy(&v, buf.data() + i * rec_size + ip, 8);
                if (m_.contains(v)) add(recs + i * rec_size, rec_size, "ftrace record of " + m_.name + " call site " + addr_text(v));
            }
            if (uint64_t used = buf.size(), all = kPage << pg_order; used < all)
                add(recs + used, all - used, "unused slots of ftrace records page " + addr_text(recs) + " (removed records)");
            pg = k_.read_u64_or_throw(pg + next, "ftrace_page");
        }
    }

    void loader_words() {
        if (auto tree = k_.find_symbol("mod_tree")) {
            add(*tree + k_.off("mod_tree_root", "addr_min"), 8, "mod_tree.addr_min: the lowest module address");
            add(*tree + k_.off("mod_tree_root", "addr_max"), 8, "mod_tree.addr_max: the end of module memory");
        }
        for (const char* sym : {"cur_orc_ip_table", "cur_orc_table"})
            if (auto a = k_.find_symbol(sym))
                add(*a, 8, std::string(sym) + ": left by the ORC sort of the last module loaded");
    }

    const LinuxKernel& k_;
    MemorySource& mem_;
    const Module& m_;
    const std::vector<Module>& all_;
    ModuleBookkeeping out_;
};

}  // namespace

ModuleBookkeeping module_bookkeeping(const LinuxKernel& k, const Module& m, const std::vector<Module>& all) {
    return Finder(k, m, all).run();
}

}  // namespace kq
