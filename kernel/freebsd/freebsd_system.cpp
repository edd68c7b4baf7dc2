#include "kernel/freebsd/freebsd_system.h"

#include <filesystem>

#include "vmcore/freebsd_dump.h"
#include "vmcore/freebsd_elf_dump.h"

namespace kq {

FreebsdSystem::~FreebsdSystem() = default;

std::string find_ko(const std::vector<std::string>& dirs, const LinkerFileInfo& file) {
    namespace fs = std::filesystem;
    std::vector<std::string> tries;
    for (const auto& d : dirs)
        if (!file.filename.empty()) {
            tries.push_back(d + "/" + file.filename);
            tries.push_back(d + "/" + file.filename + ".debug");
        }
    if (!file.pathname.empty() && file.pathname[0] == '/') {
        tries.push_back("/usr/lib/debug" + file.pathname + ".debug");
        tries.push_back(file.pathname);
    }
    std::error_code ec;
    for (const auto& p : tries)
        if (fs::is_regular_file(p, ec)) return p;
    return {};
}

std::unique_ptr<FreebsdSystem> FreebsdSystem::open_dump(const std::string& kernel, const std::string& dump,
                                                        const FreebsdOpenOptions& opts) {
    std::unique_ptr<FreebsdSystem> sys(new FreebsdSystem);
    auto say = [&](const std::string& s) {
        if (opts.progress) opts.progress(s);
    };
    sys->image_ = ElfImage::open(kernel);
    const ElfImage* image = sys->image_.get();
    DumpOptions dopts;
    dopts.note = [](void* ctx, const std::string& line) {
        auto* p = static_cast<const FreebsdOpenOptions*>(ctx);
        if (p->progress) p->progress(line);
    };
    dopts.note_ctx = const_cast<FreebsdOpenOptions*>(&opts);
    // A full dump finds the kernel's page tables through its symbols.
    dopts.kernel_symbol = [image](std::string_view name) -> std::optional<uint64_t> {
        if (const ElfSymbol* s = image->symbol(name)) return s->value;
        return std::nullopt;
    };
    say("opening dump " + dump);
    sys->dump_ = Dump::open(dump, dopts);
    if (!dynamic_cast<FreebsdDump*>(sys->dump_.get()))
        throw Error(dump + " is a " + sys->dump_->format() + ", not a FreeBSD dump: pass its vmlinux, not " + kernel);
    if (auto* elf = dynamic_cast<FreebsdElfDump*>(sys->dump_.get()); elf && !elf->page_tables())
        throw Error("the kernel's page tables were not found in " + dump + " through " + kernel +
                    "'s KPML4phys: is it the dump's kernel?");
    sys->mem_ = sys->dump_.get();
    sys->read(opts);
    return sys;
}

std::unique_ptr<FreebsdSystem> FreebsdSystem::open_memory(MemorySource& mem, const std::string& kernel,
                                                          const FreebsdOpenOptions& opts) {
    std::unique_ptr<FreebsdSystem> sys(new FreebsdSystem);
    sys->image_ = ElfImage::open(kernel);
    sys->mem_ = &mem;
    sys->read(opts);
    return sys;
}

void FreebsdSystem::read(const FreebsdOpenOptions& opts) {
    auto say = [&](const std::string& s) {
        if (opts.progress) opts.progress(s);
    };
    say("reading type layouts from " + image_->path());
    types_ = Types::open(image_->path());
    kernel_ = std::make_unique<FreebsdKernel>(*mem_, *image_, *types_);
    kernel_->check_version();
    if (auto a = kernel_->find_symbol("osrelease")) release_ = mem_->read_cstr(*a, 64);
    say("reading threads");
    threads_ = read_threads(*kernel_);
    say("reading modules");
    modules_ = read_modules(*kernel_);
    for (size_t i = 0; i < modules_.modules.size(); ++i)
        modules_.modules[i].ko_path = find_ko(opts.modules_dirs, modules_.files[i]);
}

std::vector<std::string> FreebsdSystem::warnings() const {
    std::vector<std::string> w = threads_.problems.all;
    w.insert(w.end(), modules_.problems.all.begin(), modules_.problems.all.end());
    return w;
}

Dump& FreebsdSystem::dump() {
    if (!dump_) throw Error("this kernel was not opened from a dump file: this needs one ('kmod core')");
    return *dump_;
}

Range FreebsdSystem::image_range() const {
    return {modules_.kernel.address, modules_.kernel.size, "kernel image"};
}

Survey FreebsdSystem::survey(const std::function<void(const std::string&)>& progress) const {
    return survey_freebsd({*kernel_, threads_, modules_}, progress);
}

}  // namespace kq
