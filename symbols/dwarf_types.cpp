// Types over libdwarf.
//
// libdwarf gets the sections through its object-access interface straight
// from the mapped file: nothing is read at open, and the relocation sections
// a vmlinux carries (hundreds of MB of .rela.debug_*) are never loaded. For an
// ET_REL file (.ko) the .rela.debug_* relocations are applied here, once per
// section, into a private copy.
//
// Names are indexed lazily: a look-up that misses the index walks the next
// compile units, only their top-level DIEs, recording complete struct, union,
// enumeration, typedef and base types (and enumerators) until the name shows
// up. Keys are views into .debug_str / .debug_info, so indexing allocates
// little.
#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>

#include <charconv>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "symbols/dwarf_object.h"
#include "symbols/elf_file.h"
#include "symbols/types.h"
#include "vmcore/memory_source.h"

namespace kq {

const std::string& Types::file() const {
    static const std::string none = "<unknown file>";
    return none;
}

uint64_t Types::offset_or_throw(std::string_view type, std::string_view member_path) {
    if (auto v = offset(type, member_path)) return *v;
    throw Error(std::string(type) + "." + std::string(member_path) + " not found in DWARF of " + file());
}

uint64_t Types::size_or_throw(std::string_view type) {
    if (auto v = size(type)) return *v;
    throw Error(std::string(type) + " not found in DWARF of " + file());
}

namespace {

// ---------------------------------------------------------------------------

// One compile unit header in .debug_info.
struct Unit {
    uint64_t die = 0;   // offset of its unit DIE
    uint64_t next = 0;  // offset of the next unit header
    bool types = false;  // a type unit: not walked
};

// Parses the unit header at `off`; nullopt if it is malformed.
std::optional<Unit> parse_unit(std::span<const uint8_t> info, uint64_t off, bool le) {
    auto rd = [&](uint64_t at, unsigned n) -> std::optional<uint64_t> {
        if (at > info.size() || info.size() - at < n) return std::nullopt;
        return load_le_be(info.data() + at, n, le);
    };
    auto len = rd(off, 4);
    if (!len) return std::nullopt;
    uint64_t p = off + 4;
    unsigned offsz = 4;
    if (*len == 0xffffffff) {
        len = rd(p, 8);
        if (!len) return std::nullopt;
        p += 8;
        offsz = 8;
    } else if (*len >= 0xfffffff0) {
        return std::nullopt;
    }
    if (*len > info.size() - p) return std::nullopt;
    Unit u;
    u.next = p + *len;
    auto version = rd(p, 2);
    if (!version) return std::nullopt;
    p += 2;
    if (*version >= 5) {
        auto ut = rd(p, 1);
        if (!ut) return std::nullopt;
        p += 1 + 1 + offsz;  // unit_type, address_size, debug_abbrev_offset
        switch (*ut) {
        case DW_UT_compile:
        case DW_UT_partial: break;
        case DW_UT_skeleton:
        case DW_UT_split_compile: p += 8; break;
        case DW_UT_type:
        case DW_UT_split_type:
            p += 8 + offsz;
            u.types = true;
            break;
        default: u.types = true; break;  // unknown: skip it
        }
    } else if (*version >= 2) {
        p += offsz + 1;  // debug_abbrev_offset, address_size
    } else {
        return std::nullopt;
    }
    if (p >= u.next) return std::nullopt;
    u.die = p;
    return u;
}

class Die {
public:
    Die() = default;
    explicit Die(Dwarf_Die d) : d_(d) {}
    ~Die() { reset(); }
    Die(Die&& o) noexcept : d_(o.d_) { o.d_ = nullptr; }
    Die& operator=(Die&& o) noexcept {
        if (this != &o) reset(), d_ = o.d_, o.d_ = nullptr;
        return *this;
    }
    void reset() {
        if (d_) dwarf_dealloc_die(d_);
        d_ = nullptr;
    }
    Dwarf_Die get() const { return d_; }
    Dwarf_Die* out() {
        reset();
        return &d_;
    }
    explicit operator bool() const { return d_ != nullptr; }

private:
    Dwarf_Die d_ = nullptr;
};

// Cached facts about one type DIE.
struct Member {
    std::string_view name;  // empty: an anonymous struct/union member
    uint64_t offset = 0;
    Dwarf_Off type = 0;
    bool bitfield = false;
};

struct Node {
    Dwarf_Half tag = 0;
    Dwarf_Off type = 0;  // DW_AT_type, 0 if none
    std::optional<uint64_t> byte_size;
    unsigned addr_size = 8;
    bool declaration = false;
    std::vector<uint64_t> counts;  // array: element count per dimension (0: unknown)
    std::vector<Member> members;  // struct/union
    bool members_loaded = false;
};

// A position in a type: a DIE, and for arrays how many dimensions were indexed.
struct Cursor {
    Dwarf_Off die = 0;
    size_t dims = 0;
    bool bitfield = false;
};

class DwarfTypes final : public Types {
public:
    explicit DwarfTypes(const std::string& path) : obj_(path), path_(path) {
        unsigned info = obj_.file().find(".debug_info");
        if (!info || obj_.section_size(info) == 0) throw Error(path + " has no DWARF debug info (.debug_info)");
        info_index_ = info;
        obj_.open();
        dbg_ = obj_.dbg();
    }

    ~DwarfTypes() override { nodes_.clear(); }

    const std::string& file() const override { return path_; }

    std::optional<uint64_t> offset(std::string_view type, std::string_view member_path) override {
        std::lock_guard lock(mu_);
        auto r = resolve(type, member_path);
        if (!r) return std::nullopt;
        return r->first;
    }

    std::optional<uint64_t> member_size(std::string_view type, std::string_view member_path) override {
        std::lock_guard lock(mu_);
        auto r = resolve(type, member_path);
        if (!r || r->second.bitfield) return std::nullopt;
        return cursor_size(r->second);
    }

    std::optional<uint64_t> size(std::string_view type) override {
        std::lock_guard lock(mu_);
        if (type.ends_with('*')) {
            // Any pointer: the address size of the unit defining a base type.
            return pointer_size();
        }
        auto die = find_type(type);
        if (!die) return std::nullopt;
        return type_size(*die);
    }

    std::optional<int64_t> enumerator(std::string_view name) override {
        std::lock_guard lock(mu_);
        for (;;) {
            if (auto it = enumerators_.find(name); it != enumerators_.end()) return it->second;
            if (!index_next_unit()) return std::nullopt;
        }
    }

    size_t units_indexed() const override { return units_indexed_; }

private:
    // ---- libdwarf helpers

    struct Err {
        Dwarf_Debug dbg;
        Dwarf_Error e = nullptr;
        ~Err() { clear(); }
        void clear() {
            if (e) dwarf_dealloc(dbg, e, DW_DLA_ERROR);
            e = nullptr;
        }
        Dwarf_Error* operator&() {
            clear();
            return &e;
        }
    };

    Die die_at(Dwarf_Off off) {
        Err err{dbg_};
        Die d;
        if (dwarf_offdie_b(dbg_, off, true, d.out(), &err) != DW_DLV_OK) return {};
        return d;
    }

    Dwarf_Half tag_of(Dwarf_Die d) {
        Err err{dbg_};
        Dwarf_Half t = 0;
        if (dwarf_tag(d, &t, &err) != DW_DLV_OK) return 0;
        return t;
    }

    std::string_view name_of(Dwarf_Die d) {
        Err err{dbg_};
        char* n = nullptr;
        if (dwarf_diename(d, &n, &err) != DW_DLV_OK || !n) return {};
        return n;  // points into a section: lives as long as dbg_
    }

    Dwarf_Off offset_of(Dwarf_Die d) {
        Err err{dbg_};
        Dwarf_Off off = 0;
        dwarf_dieoffset(d, &off, &err);
        return off;
    }

    bool has(Dwarf_Die d, Dwarf_Half at) {
        Err err{dbg_};
        Dwarf_Bool b = 0;
        return dwarf_hasattr(d, at, &b, &err) == DW_DLV_OK && b;
    }

    template <class F>
    auto with_attr(Dwarf_Die d, Dwarf_Half at, F&& f) -> decltype(f(Dwarf_Attribute{}, Dwarf_Half{})) {
        Err err{dbg_};
        Dwarf_Attribute a = nullptr;
        if (dwarf_attr(d, at, &a, &err) != DW_DLV_OK) return {};
        Dwarf_Half form = 0;
        dwarf_whatform(a, &form, &err);
        auto r = f(a, form);
        dwarf_dealloc_attribute(a);
        return r;
    }

    std::optional<uint64_t> udata(Dwarf_Die d, Dwarf_Half at) {
        return with_attr(d, at, [&](Dwarf_Attribute a, Dwarf_Half form) -> std::optional<uint64_t> {
            Err err{dbg_};
            Dwarf_Unsigned u = 0;
            if (dwarf_formudata(a, &u, &err) == DW_DLV_OK) return u;
            Dwarf_Signed s = 0;
            if (dwarf_formsdata(a, &s, &err) == DW_DLV_OK) return static_cast<uint64_t>(s);
            return std::nullopt;
        });
    }

    std::optional<int64_t> sdata(Dwarf_Die d, Dwarf_Half at) {
        return with_attr(d, at, [&](Dwarf_Attribute a, Dwarf_Half form) -> std::optional<int64_t> {
            Err err{dbg_};
            if (form == DW_FORM_sdata || form == DW_FORM_implicit_const) {
                Dwarf_Signed s = 0;
                if (dwarf_formsdata(a, &s, &err) == DW_DLV_OK) return s;
            }
            Dwarf_Unsigned u = 0;
            if (dwarf_formudata(a, &u, &err) == DW_DLV_OK) return static_cast<int64_t>(u);
            Dwarf_Signed s = 0;
            if (dwarf_formsdata(a, &s, &err) == DW_DLV_OK) return s;
            return std::nullopt;
        });
    }

    Dwarf_Off type_ref(Dwarf_Die d) {
        auto r = with_attr(d, DW_AT_type, [&](Dwarf_Attribute a, Dwarf_Half) -> std::optional<Dwarf_Off> {
            Err err{dbg_};
            Dwarf_Off off = 0;
            if (dwarf_global_formref(a, &off, &err) != DW_DLV_OK) return std::nullopt;
            return off;
        });
        return r.value_or(0);
    }

    // DW_AT_data_member_location: a constant, or a location expression of
    // the DW_OP_plus_uconst / DW_OP_constu kind older producers emit.
    std::optional<uint64_t> member_location(Dwarf_Die d) {
        return with_attr(d, DW_AT_data_member_location,
                         [&](Dwarf_Attribute a, Dwarf_Half form) -> std::optional<uint64_t> {
            Err err{dbg_};
            const uint8_t* p = nullptr;
            uint64_t len = 0;
            if (form == DW_FORM_exprloc) {
                Dwarf_Unsigned l = 0;
                Dwarf_Ptr ptr = nullptr;
                if (dwarf_formexprloc(a, &l, &ptr, &err) != DW_DLV_OK) return std::nullopt;
                p = static_cast<const uint8_t*>(ptr), len = l;
            } else if (form == DW_FORM_block1 || form == DW_FORM_block2 || form == DW_FORM_block4 ||
                       form == DW_FORM_block) {
                Dwarf_Block* b = nullptr;
                if (dwarf_formblock(a, &b, &err) != DW_DLV_OK) return std::nullopt;
                auto v = eval_simple_expr(static_cast<const uint8_t*>(b->bl_data), b->bl_len);
                dwarf_dealloc(dbg_, b, DW_DLA_BLOCK);
                return v;
            } else {
                Dwarf_Unsigned u = 0;
                if (dwarf_formudata(a, &u, &err) == DW_DLV_OK) return u;
                Dwarf_Signed s = 0;
                if (dwarf_formsdata(a, &s, &err) == DW_DLV_OK) return static_cast<uint64_t>(s);
                return std::nullopt;
            }
            return eval_simple_expr(p, len);
        });
    }

    static std::optional<uint64_t> eval_simple_expr(const uint8_t* p, uint64_t len) {
        if (!p || len == 0) return std::nullopt;
        auto uleb = [&](uint64_t& i) -> std::optional<uint64_t> {
            uint64_t v = 0;
            unsigned shift = 0;
            while (i < len) {
                uint8_t b = p[i++];
                if (shift < 64) v |= uint64_t(b & 0x7f) << shift;
                shift += 7;
                if (!(b & 0x80)) return v;
            }
            return std::nullopt;
        };
        uint64_t i = 0;
        uint8_t op = p[i++];
        std::optional<uint64_t> v;
        if (op == DW_OP_plus_uconst || op == DW_OP_constu) v = uleb(i);
        else if (op >= DW_OP_lit0 && op <= DW_OP_lit31) v = op - DW_OP_lit0;
        else return std::nullopt;
        return i == len ? v : std::nullopt;
    }

    // ---- the lazy name index

    // Walks the top-level DIEs of the next compile unit. False when none is left.
    bool index_next_unit() {
        if (exhausted_) return false;
        std::span<const uint8_t> info = obj_.section(info_index_);
        for (;;) {
            if (next_unit_ >= info.size()) {
                exhausted_ = true;
                return false;
            }
            auto u = parse_unit(info, next_unit_, obj_.file().little_endian());
            if (!u) {
                exhausted_ = true;  // malformed: what was indexed stays usable
                return false;
            }
            next_unit_ = u->next;
            if (u->types) continue;
            index_unit(u->die);
            ++units_indexed_;
            return true;
        }
    }

    void index_unit(Dwarf_Off unit_die) {
        Die cu = die_at(unit_die);
        if (!cu) return;
        Err err{dbg_};
        Die d;
        if (dwarf_child(cu.get(), d.out(), &err) != DW_DLV_OK) return;
        while (d) {
            Dwarf_Half tag = tag_of(d.get());
            switch (tag) {
            case DW_TAG_structure_type:
            case DW_TAG_union_type:
            case DW_TAG_class_type:
            case DW_TAG_enumeration_type: {
                std::string_view n = name_of(d.get());
                bool fresh = false;
                if (!n.empty() && !tags_.contains(n) && !has(d.get(), DW_AT_declaration)) {
                    tags_.emplace(n, offset_of(d.get()));
                    fresh = true;
                }
                if (tag == DW_TAG_enumeration_type && (fresh || n.empty())) index_enumerators(d.get());
                break;
            }
            case DW_TAG_typedef:
            case DW_TAG_base_type: {
                std::string_view n = name_of(d.get());
                if (!n.empty() && !names_.contains(n)) names_.emplace(n, offset_of(d.get()));
                break;
            }
            default: break;
            }
            Die next;
            if (dwarf_siblingof_b(dbg_, d.get(), true, next.out(), &err) != DW_DLV_OK) break;
            d = std::move(next);
        }
    }

    void index_enumerators(Dwarf_Die en) {
        if (has(en, DW_AT_declaration)) return;
        Err err{dbg_};
        Die e;
        if (dwarf_child(en, e.out(), &err) != DW_DLV_OK) return;
        bool first = true;
        bool is_signed = false;
        bool sign_known = false;
        while (e) {
            if (tag_of(e.get()) == DW_TAG_enumerator) {
                std::string_view n = name_of(e.get());
                // An anonymous enum seen in an earlier unit: skip it whole.
                if (first && enumerators_.contains(n)) return;
                first = false;
                if (!n.empty() && !enumerators_.contains(n)) {
                    std::optional<int64_t> v;
                    Dwarf_Half form = with_attr(e.get(), DW_AT_const_value,
                                                [](Dwarf_Attribute, Dwarf_Half f) { return f; });
                    if (form == DW_FORM_sdata || form == DW_FORM_implicit_const) {
                        v = sdata(e.get(), DW_AT_const_value);
                    } else if (auto u = udata(e.get(), DW_AT_const_value)) {
                        // Fixed-size data: the sign comes from the enum's type.
                        if (!sign_known) {
                            is_signed = enum_is_signed(en);
                            sign_known = true;
                        }
                        uint64_t x = *u;
                        unsigned bits = form == DW_FORM_data1 ? 8 : form == DW_FORM_data2 ? 16
                                      : form == DW_FORM_data4 ? 32 : 64;
                        if (is_signed && bits < 64 && (x >> (bits - 1)) & 1) x |= ~uint64_t(0) << bits;
                        v = static_cast<int64_t>(x);
                    }
                    if (v) enumerators_.emplace(n, *v);
                }
            }
            Die next;
            if (dwarf_siblingof_b(dbg_, e.get(), true, next.out(), &err) != DW_DLV_OK) break;
            e = std::move(next);
        }
    }

    bool enum_is_signed(Dwarf_Die en) {
        Dwarf_Off t = type_ref(en);
        for (int guard = 0; t && guard < 16; ++guard) {
            Die d = die_at(t);
            if (!d) return false;
            Dwarf_Half tag = tag_of(d.get());
            if (tag == DW_TAG_base_type) {
                auto enc = udata(d.get(), DW_AT_encoding);
                return enc && (*enc == DW_ATE_signed || *enc == DW_ATE_signed_char);
            }
            t = type_ref(d.get());
        }
        return false;
    }

    // GCC spells C's base types its own way.
    static std::string_view canonical_base(std::string_view n) {
        static const std::pair<std::string_view, std::string_view> aliases[] = {
            {"unsigned long", "long unsigned int"},
            {"unsigned long int", "long unsigned int"},
            {"long", "long int"},
            {"signed long", "long int"},
            {"unsigned long long", "long long unsigned int"},
            {"long long", "long long int"},
            {"unsigned", "unsigned int"},
            {"short", "short int"},
            {"unsigned short", "short unsigned int"},
            {"signed", "int"},
        };
        for (auto& [from, to] : aliases)
            if (n == from) return to;
        return n;
    }

    // A type by name: "task_struct", "struct task_struct", "union x", "enum y",
    // a typedef or a base type. In the tag namespace first (within the unit
    // where the name first shows up), then typedefs and base types.
    std::optional<Dwarf_Off> find_type(std::string_view name) {
        bool tag_only = false;
        for (std::string_view kw : {"struct ", "union ", "enum ", "class "}) {
            if (name.starts_with(kw)) {
                name.remove_prefix(kw.size());
                tag_only = true;
                break;
            }
        }
        while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
        while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
        if (name.empty()) return std::nullopt;
        std::string_view base = tag_only ? name : canonical_base(name);
        for (;;) {
            if (auto it = tags_.find(name); it != tags_.end()) return it->second;
            if (!tag_only) {
                if (auto it = names_.find(base); it != names_.end()) return it->second;
            }
            if (!index_next_unit()) return std::nullopt;
        }
    }

    Node& node(Dwarf_Off off) {
        auto [it, fresh] = nodes_.try_emplace(off);
        Node& n = it->second;
        if (!fresh) return n;
        Die d = die_at(off);
        if (!d) return n;
        n.tag = tag_of(d.get());
        n.type = type_ref(d.get());
        n.byte_size = udata(d.get(), DW_AT_byte_size);
        n.declaration = has(d.get(), DW_AT_declaration);
        Err err{dbg_};
        Dwarf_Half as = 8;
        if (dwarf_get_die_address_size(d.get(), &as, &err) == DW_DLV_OK && as) n.addr_size = as;
        if (n.tag == DW_TAG_array_type) {
            Die c;
            if (dwarf_child(d.get(), c.out(), &err) == DW_DLV_OK) {
                while (c) {
                    Dwarf_Half t = tag_of(c.get());
                    if (t == DW_TAG_subrange_type || t == DW_TAG_enumeration_type) {
                        uint64_t count = 0;
                        if (auto cnt = udata(c.get(), DW_AT_count)) {
                            count = *cnt;
                        } else if (auto ub = udata(c.get(), DW_AT_upper_bound)) {
                            uint64_t lb = udata(c.get(), DW_AT_lower_bound).value_or(0);
                            // [0] arrays come as upper bound -1 (all ones at the form's width).
                            bool minus_one = *ub == ~uint64_t(0) || *ub == 0xffffffffu;
                            count = (!minus_one && *ub >= lb) ? *ub - lb + 1 : 0;
                        }
                        n.counts.push_back(count);
                    }
                    Die next;
                    if (dwarf_siblingof_b(dbg_, c.get(), true, next.out(), &err) != DW_DLV_OK) break;
                    c = std::move(next);
                }
            }
            if (n.counts.empty()) n.counts.push_back(0);
        }
        return n;
    }

    const std::vector<Member>& members(Dwarf_Off off) {
        Node& n = node(off);
        if (n.members_loaded) return n.members;
        n.members_loaded = true;
        Die d = die_at(off);
        if (!d) return n.members;
        Err err{dbg_};
        Die c;
        if (dwarf_child(d.get(), c.out(), &err) != DW_DLV_OK) return n.members;
        std::vector<Member> out;
        while (c) {
            if (tag_of(c.get()) == DW_TAG_member) {
                Member m;
                m.name = name_of(c.get());
                m.type = type_ref(c.get());
                if (auto loc = member_location(c.get())) {
                    m.offset = *loc;
                } else if (auto bit = udata(c.get(), DW_AT_data_bit_offset)) {
                    m.offset = *bit / 8;
                    m.bitfield = true;
                }
                if (has(c.get(), DW_AT_bit_size)) m.bitfield = true;
                out.push_back(m);
            }
            Die next;
            if (dwarf_siblingof_b(dbg_, c.get(), true, next.out(), &err) != DW_DLV_OK) break;
            c = std::move(next);
        }
        n.members = std::move(out);
        return n.members;
    }

    // Follows typedefs and qualifiers.
    Dwarf_Off strip(Dwarf_Off off) {
        for (int guard = 0; off && guard < 64; ++guard) {
            const Node& n = node(off);
            switch (n.tag) {
            case DW_TAG_typedef:
            case DW_TAG_const_type:
            case DW_TAG_volatile_type:
            case DW_TAG_restrict_type:
            case DW_TAG_atomic_type:
                off = n.type;
                continue;
            default: return off;
            }
        }
        return 0;
    }

    std::optional<uint64_t> type_size(Dwarf_Off off, int depth = 0) {
        if (!off || depth > 64) return std::nullopt;
        const Node& n = node(off);
        if (n.declaration) return std::nullopt;
        switch (n.tag) {
        case DW_TAG_pointer_type:
        case DW_TAG_reference_type:
        case DW_TAG_rvalue_reference_type:
        case DW_TAG_ptr_to_member_type:
            return n.byte_size ? *n.byte_size : n.addr_size;
        case DW_TAG_typedef:
        case DW_TAG_const_type:
        case DW_TAG_volatile_type:
        case DW_TAG_restrict_type:
        case DW_TAG_atomic_type:
            return type_size(n.type, depth + 1);
        case DW_TAG_array_type: {
            if (n.byte_size) return n.byte_size;
            auto elem = type_size(n.type, depth + 1);
            if (!elem) return std::nullopt;
            uint64_t total = *elem;
            for (uint64_t c : n.counts) total *= c;
            return total;
        }
        case DW_TAG_enumeration_type:
            if (n.byte_size) return n.byte_size;
            return type_size(n.type, depth + 1);
        default:
            return n.byte_size;
        }
    }

    std::optional<uint64_t> cursor_size(const Cursor& c) {
        if (c.dims == 0) return type_size(c.die);
        Dwarf_Off arr = strip(c.die);
        const Node& n = node(arr);
        auto elem = type_size(n.type);
        if (!elem) return std::nullopt;
        uint64_t total = *elem;
        for (size_t i = c.dims; i < n.counts.size(); ++i) total *= n.counts[i];
        return total;
    }

    std::optional<uint64_t> pointer_size() {
        // The address size of whatever unit defines "int" (any unit would do).
        auto d = find_type("int");
        if (!d) return std::nullopt;
        return node(*d).addr_size;
    }

    // Member `name` of struct/union `agg` (stripped), looking through
    // anonymous struct/union members.
    std::optional<Member> find_member(Dwarf_Off agg, std::string_view name, int depth = 0) {
        if (depth > 32) return std::nullopt;
        // Node references stay valid: nodes_ is node-based.
        const std::vector<Member>& ms = members(agg);
        for (const Member& m : ms)
            if (!m.name.empty() && m.name == name) return m;
        for (const Member& m : ms) {
            if (!m.name.empty()) continue;
            Dwarf_Off t = strip(m.type);
            if (!t) continue;
            Dwarf_Half tag = node(t).tag;
            if (tag != DW_TAG_structure_type && tag != DW_TAG_union_type && tag != DW_TAG_class_type)
                continue;
            if (auto r = find_member(t, name, depth + 1)) {
                r->offset += m.offset;
                return r;
            }
        }
        return std::nullopt;
    }

    using Resolved = std::pair<uint64_t, Cursor>;

    std::optional<Resolved> resolve(std::string_view type, std::string_view path) {
        std::string key;
        key.reserve(type.size() + path.size() + 1);
        key.append(type).push_back('\0');
        key.append(path);
        if (auto it = resolved_.find(key); it != resolved_.end()) return it->second;
        auto r = resolve_uncached(type, path);
        // Only hits are cached for good: a miss may be a typo retried later,
        // and a miss on a complete index costs nothing to recompute.
        if (r) resolved_.emplace(std::move(key), r);
        return r;
    }

    std::optional<Resolved> resolve_uncached(std::string_view type, std::string_view path) {
        auto root = find_type(type);
        if (!root) return std::nullopt;
        Cursor cur{*root, 0};
        uint64_t off = 0;
        while (!path.empty()) {
            size_t dot = path.find('.');
            std::string_view comp = path.substr(0, dot);
            path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
            if (dot != std::string_view::npos && path.empty()) return std::nullopt;  // trailing '.'
            size_t br = comp.find('[');
            std::string_view name = comp.substr(0, br);
            std::string_view indices = br == std::string_view::npos ? std::string_view{} : comp.substr(br);
            if (!name.empty()) {
                if (cur.dims != 0) return std::nullopt;  // member of an array
                Dwarf_Off agg = strip(cur.die);
                if (!agg) return std::nullopt;
                Dwarf_Half tag = node(agg).tag;
                if (tag != DW_TAG_structure_type && tag != DW_TAG_union_type && tag != DW_TAG_class_type)
                    return std::nullopt;
                auto m = find_member(agg, name);
                if (!m) return std::nullopt;
                off += m->offset;
                cur = Cursor{m->type, 0, m->bitfield};
            } else if (indices.empty()) {
                return std::nullopt;  // empty component
            }
            while (!indices.empty()) {
                size_t close = indices.find(']');
                if (indices.front() != '[' || close == std::string_view::npos) return std::nullopt;
                std::string_view num = indices.substr(1, close - 1);
                indices.remove_prefix(close + 1);
                auto idx = parse_index(num);
                if (!idx) return std::nullopt;
                Dwarf_Off arr = strip(cur.die);
                if (!arr) return std::nullopt;
                const Node& n = node(arr);
                if (n.tag != DW_TAG_array_type || cur.dims >= n.counts.size()) return std::nullopt;
                uint64_t count = n.counts[cur.dims];
                if (count != 0 && *idx >= count) return std::nullopt;
                Cursor next{arr, cur.dims + 1};
                if (next.dims == n.counts.size()) next = Cursor{n.type, 0};
                auto stride = cursor_size(next);
                if (!stride) return std::nullopt;
                off += *idx * *stride;
                cur = next;
            }
        }
        return Resolved{off, cur};
    }

    static std::optional<uint64_t> parse_index(std::string_view s) {
        int base = 10;
        if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2), base = 16;
        uint64_t v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
        if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
        return v;
    }

    DwarfObject obj_;
    std::string path_;
    unsigned info_index_ = 0;
    Dwarf_Debug dbg_ = nullptr;
    std::mutex mu_;

    uint64_t next_unit_ = 0;
    bool exhausted_ = false;
    size_t units_indexed_ = 0;
    std::unordered_map<std::string_view, Dwarf_Off> tags_;   // struct/union/enum tags
    std::unordered_map<std::string_view, Dwarf_Off> names_;  // typedefs, base types
    std::unordered_map<std::string_view, int64_t> enumerators_;
    std::unordered_map<Dwarf_Off, Node> nodes_;
    std::unordered_map<std::string, std::optional<Resolved>> resolved_;
};

}  // namespace

std::unique_ptr<Types> Types::open(const std::string& path) {
    return std::make_unique<DwarfTypes>(path);
}

}  // namespace kq
