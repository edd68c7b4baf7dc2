#include "kernel/linux/module.h"

#include "kernel/list_walk.h"

namespace kq {
namespace {

struct ModuleLayout {
    uint64_t list, name, name_len, state, refcnt, sect_attrs, source_list;
    uint64_t core, init;  // struct module_layout
    uint64_t l_base, l_size, l_text, l_ro, l_ro_after_init;
    uint64_t sa_nsections, sa_attrs, attr_size, attr_name, attr_address;
    uint64_t use_source_list, use_source;
    int64_t live, coming, going, unformed;

    explicit ModuleLayout(const LinuxKernel& k) {
        auto& t = k.types();
        list = k.off("module", "list");
        name = k.off("module", "name");
        name_len = t.member_size("module", "name").value_or(56);
        state = k.off("module", "state");
        refcnt = k.off("module", "refcnt");
        sect_attrs = k.off("module", "sect_attrs");
        source_list = k.off("module", "source_list");
        core = k.off("module", "core_layout");
        init = k.off("module", "init_layout");
        l_base = k.off("module_layout", "base");
        l_size = k.off("module_layout", "size");
        l_text = k.off("module_layout", "text_size");
        l_ro = k.off("module_layout", "ro_size");
        l_ro_after_init = k.off("module_layout", "ro_after_init_size");
        sa_nsections = k.off("module_sect_attrs", "nsections");
        sa_attrs = k.off("module_sect_attrs", "attrs");
        attr_size = t.size_or_throw("module_sect_attr");
        attr_name = k.off("module_sect_attr", "battr.attr.name");
        attr_address = k.off("module_sect_attr", "address");
        use_source_list = k.off("module_use", "source_list");
        use_source = k.off("module_use", "source");
        live = t.enumerator("MODULE_STATE_LIVE").value_or(0);
        coming = t.enumerator("MODULE_STATE_COMING").value_or(1);
        going = t.enumerator("MODULE_STATE_GOING").value_or(2);
        unformed = t.enumerator("MODULE_STATE_UNFORMED").value_or(3);
    }
};

class Reader {
public:
    explicit Reader(const LinuxKernel& k) : k_(k), mem_(k.mem()), L_(k) {}

    ModuleList run() {
        uint64_t head = k_.symbol("modules");
        auto w = walk_list(mem_, head, L_.list, [&](uint64_t m) {
            out_.modules.push_back(read(m));
            return true;
        }, 65536);
        if (!w.complete()) out_.warnings.push_back("module list: " + w.problem);
        return std::move(out_);
    }

private:
    static constexpr int64_t kModuleRefBase = 1;

    Module read(uint64_t m) {
        Module mod;
        mod.addr = m;
        mod.name = mem_.read_cstr(m + L_.name, L_.name_len);
        int32_t st = mem_.read_as<int32_t>(m + L_.state).value_or(-1);
        mod.state = st == L_.live ? "Live" : st == L_.coming ? "Coming" : st == L_.going ? "Going"
                  : st == L_.unformed ? "Unformed" : "unknown(" + std::to_string(st) + ")";
        // refcnt counts from MODULE_REF_BASE (1, a #define, not in DWARF);
        // module_refcount() and lsmod show refcnt - 1. -1: unreadable.
        auto ref = mem_.read_as<int32_t>(m + L_.refcnt);
        // 0: an unload under way took the base reference (try_stop_module).
        mod.refcount = !ref ? -1 : *ref == 0 ? 0 : int64_t(*ref) - kModuleRefBase;
        layout(m + L_.core, "", mod);
        layout(m + L_.init, "init ", mod);
        sections(m, mod);
        holders(m, mod);
        return mod;
    }

    // core_layout/init_layout: [text | rodata | ro_after_init | data+bss].
    void layout(uint64_t l, const std::string& prefix, Module& mod) {
        uint64_t base = mem_.read_u64(l + L_.l_base).value_or(0);
        if (!base) return;
        auto u32 = [&](uint64_t off) { return mem_.read_as<uint32_t>(l + off).value_or(0); };
        uint64_t size = u32(L_.l_size), text = u32(L_.l_text), ro = u32(L_.l_ro),
                 roai = u32(L_.l_ro_after_init);
        auto add = [&](uint64_t from, uint64_t to, const char* what) {
            if (to > from) mod.ranges.push_back({base + from, to - from, prefix + what});
        };
        add(0, text, "text");
        add(text, ro, "rodata");
        add(ro, roai, "ro_after_init");
        add(std::max(ro, roai), size, "data");
    }

    void sections(uint64_t m, Module& mod) {
        uint64_t sa = mem_.read_u64(m + L_.sect_attrs).value_or(0);
        if (!sa) return;
        uint32_t n = mem_.read_as<uint32_t>(sa + L_.sa_nsections).value_or(0);
        if (n > 4096) {
            out_.warnings.push_back(mod.name + ": implausible section count " + std::to_string(n));
            return;
        }
        for (uint32_t i = 0; i < n; ++i) {
            uint64_t a = sa + L_.sa_attrs + i * L_.attr_size;
            auto name_ptr = mem_.read_u64(a + L_.attr_name);
            auto addr = mem_.read_u64(a + L_.attr_address);
            if (!name_ptr || !addr) {
                out_.warnings.push_back(mod.name + ": unreadable section attribute " + std::to_string(i));
                break;
            }
            mod.sections.push_back({mem_.read_cstr(*name_ptr, 128), *addr});
        }
    }

    // Modules using this one: module_use entries on its source_list.
    void holders(uint64_t m, Module& mod) {
        auto w = walk_list(mem_, m + L_.source_list, L_.use_source_list, [&](uint64_t use) {
            if (auto src = mem_.read_u64(use + L_.use_source))
                mod.holders.push_back(mem_.read_cstr(*src + L_.name, L_.name_len));
            return true;
        }, 65536);
        if (!w.complete()) out_.warnings.push_back(mod.name + " holders: " + w.problem);
    }

    const LinuxKernel& k_;
    MemorySource& mem_;
    ModuleLayout L_;
    ModuleList out_;
};

}  // namespace

ModuleList read_modules(const LinuxKernel& k) { return Reader(k).run(); }

}  // namespace kq
