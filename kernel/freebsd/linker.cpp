#include "kernel/freebsd/linker.h"

#include <map>

#include "kernel/freebsd/queue_walk.h"

namespace kq {
namespace {

constexpr int64_t LINKER_FILE_LINKED = 0x1;  // sys/linker.h
constexpr uint64_t kExecutable = 0x4;        // progtab flags: SHF_EXECINSTR and VM_PROT_EXECUTE alike
constexpr uint32_t kMaxSections = 4096;

std::string stem(const std::string& filename) {
    const std::string ext = ".ko";
    if (filename.size() > ext.size() && filename.compare(filename.size() - ext.size(), ext.size(), ext) == 0)
        return filename.substr(0, filename.size() - ext.size());
    return filename;
}

std::string kind_of(const std::string& section, uint64_t flags) {
    if ((flags & kExecutable) || section.rfind(".text", 0) == 0) return "text";
    if (section.rfind(".data", 0) == 0 || section.rfind(".bss", 0) == 0) return "data";
    return "rodata";
}

// The sections of a file loaded by the object linker (link_elf_obj: every
// amd64 .ko), from its elf_file's progtab. False if it has none.
bool read_sections(const FreebsdKernel& k, uint64_t lf, Module& m, WalkProblems& problems) {
    Types& t = k.types();
    auto o_tab = t.offset("elf_file", "progtab");
    auto o_n = t.offset("elf_file", "nprogtab");
    auto ent = t.size("Elf_progent");
    if (!o_tab || !o_n || !ent || !t.offset("Elf_progent", "name")) return false;
    auto tab = k.mem().read_u64(lf + *o_tab);
    auto n = k.mem().read_as<uint32_t>(lf + *o_n);
    if (!tab || !n) {
        problems.add(m.name + ": its section table is unreadable");
        return false;
    }
    if (!*tab || !*n) return false;
    if (*n > kMaxSections) {
        problems.add(m.name + ": " + std::to_string(*n) + " sections");
        return false;
    }
    for (uint32_t i = 0; i < *n; ++i) {
        const uint64_t pe = *tab + i * *ent;
        auto addr = k.read_ptr(pe, "Elf_progent", "addr");
        auto size = k.read_int(pe, "Elf_progent", "size");
        auto flags = k.read_int(pe, "Elf_progent", "flags");
        std::string name = k.read_name(pe, "Elf_progent", "name");
        if (!addr || !size || !flags) {
            problems.add(m.name + ": section " + std::to_string(i) + " is unreadable");
            continue;
        }
        if (!*addr || *size <= 0) continue;
        m.sections.push_back({name, *addr});
        m.ranges.push_back({*addr, static_cast<uint64_t>(*size), kind_of(name, static_cast<uint64_t>(*flags))});
    }
    return !m.ranges.empty();
}

}  // namespace

const Module* FreebsdModules::find(const std::string& name) const {
    for (size_t i = 0; i < modules.size(); ++i)
        if (modules[i].name == name || files[i].filename == name) return &modules[i];
    for (size_t i = 0; i < modules.size(); ++i)
        for (const auto& d : files[i].declared)
            if (d == name) return &modules[i];
    return nullptr;
}

FreebsdModules read_modules(const FreebsdKernel& k) {
    FreebsdModules out;
    MemorySource& mem = k.mem();
    const uint64_t o_link = k.off("linker_file", "link.tqe_next");
    const uint64_t kernel_file = k.find_symbol("linker_kernel_file")
                                     ? mem.read_u64(k.symbol("linker_kernel_file")).value_or(0)
                                     : 0;

    std::map<uint64_t, size_t> by_file;  // struct linker_file -> index in modules
    std::vector<std::vector<uint64_t>> deps;
    auto info_of = [&](uint64_t lf) {
        LinkerFileInfo f;
        f.filename = k.read_name(lf, "linker_file", "filename");
        f.pathname = k.read_name(lf, "linker_file", "pathname");
        f.id = static_cast<int>(k.read_int(lf, "linker_file", "id").value_or(0));
        f.address = k.read_ptr(lf, "linker_file", "address").value_or(0);
        f.size = static_cast<uint64_t>(k.read_int(lf, "linker_file", "size").value_or(0));
        f.refs = static_cast<int>(k.read_int(lf, "linker_file", "refs").value_or(-1));
        f.userrefs = static_cast<int>(k.read_int(lf, "linker_file", "userrefs").value_or(-1));
        return f;
    };
    WalkResult files = walk_queue_head(mem, k.symbol("linker_files"), o_link, [&](uint64_t lf) {
        auto flags = k.read_int(lf, "linker_file", "flags");
        if (!flags) {
            out.problems.add("linker file " + addr_text(lf) + " is unreadable");
            return true;
        }
        LinkerFileInfo f = info_of(lf);
        const bool is_kernel = kernel_file ? lf == kernel_file : out.files.empty() && f.filename == "kernel";
        if (is_kernel) {
            out.kernel = std::move(f);
            by_file[lf] = SIZE_MAX;
            return true;
        }
        Module m;
        m.name = stem(f.filename);
        m.addr = lf;
        m.state = *flags & LINKER_FILE_LINKED ? "Live" : "Linking";
        m.refcount = f.refs > 0 ? f.refs - 1 : -1;
        if (!read_sections(k, lf, m, out.problems) && f.address && f.size)
            m.ranges.push_back({f.address, f.size, "image"});
        std::vector<uint64_t> d;
        const int64_t ndeps = k.read_int(lf, "linker_file", "ndeps").value_or(0);
        if (auto tab = k.read_ptr(lf, "linker_file", "deps"); tab && *tab && ndeps > 0 && ndeps < 4096)
            for (int64_t i = 0; i < ndeps; ++i)
                if (auto dep = mem.read_u64(*tab + 8 * i); dep && *dep) d.push_back(*dep);
        by_file[lf] = out.modules.size();
        out.modules.push_back(std::move(m));
        out.files.push_back(std::move(f));
        deps.push_back(std::move(d));
        return true;
    });
    out.problems.check("linker_files", files);

    // A file's dependents hold a reference to it: they are its holders.
    for (size_t i = 0; i < deps.size(); ++i)
        for (uint64_t d : deps[i])
            if (auto it = by_file.find(d); it != by_file.end() && it->second != SIZE_MAX)
                out.modules[it->second].holders.push_back(out.modules[i].name);

    // The modules each file declares.
    const uint64_t o_mlink = k.off("module", "link.tqe_next");
    WalkResult mods = walk_queue_head(mem, k.symbol("modules"), o_mlink, [&](uint64_t mod) {
        auto file = k.read_ptr(mod, "module", "file");
        std::string name = k.read_name(mod, "module", "name");
        if (!file) {
            out.problems.add("module " + addr_text(mod) + " is unreadable");
            return true;
        }
        if (auto it = by_file.find(*file); it != by_file.end()) {
            if (it->second == SIZE_MAX) out.kernel.declared.push_back(name);
            else out.files[it->second].declared.push_back(name);
        }
        return true;
    });
    out.problems.check("modules", mods);
    return out;
}

}  // namespace kq
