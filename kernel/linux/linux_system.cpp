#include "kernel/linux/linux_system.h"

#include <algorithm>

namespace kq {

static uint64_t parse_hex(const std::string& s) {
    try {
        return std::stoull(s, nullptr, 16);
    } catch (...) {
        throw Error("bad number in VMCOREINFO: " + s);
    }
}

std::unique_ptr<LinuxSystem> LinuxSystem::open_dump(const std::string& vmlinux, const std::string& dump,
                                                    const OpenOptions& opts) {
    auto say = [&](const std::string& s) {
        if (opts.progress) opts.progress(s);
    };
    auto sys = std::make_unique<LinuxSystem>();
    DumpOptions dopts;
    dopts.note = [](void* ctx, const std::string& line) {
        auto* p = static_cast<const OpenOptions*>(ctx);
        if (p->progress) p->progress(line);
    };
    dopts.note_ctx = const_cast<OpenOptions*>(&opts);
    say("opening dump " + dump);
    sys->dump_ = Dump::open(dump, dopts);
    sys->vmlinux_ = ElfImage::open(vmlinux);

    // A dump of another kernel than vmlinux must be refused before anything
    // is read with the wrong layouts.
    auto osrelease = sys->dump_->vmcoreinfo_value("OSRELEASE");
    if (!osrelease)
        throw Error("dump has no VMCOREINFO (QEMU needs -device vmcoreinfo and qemu_fw_cfg loaded in the guest): " + dump);
    std::string file_id = sys->vmlinux_->build_id();
    if (auto dump_id = sys->dump_->vmcoreinfo_value("BUILD-ID"); dump_id && !file_id.empty() &&
        file_id.compare(0, dump_id->size(), *dump_id) != 0)
        throw Error("vmlinux does not match the dump: build id " + file_id + " vs the dump's " + *dump_id +
                    " (kernel " + *osrelease + ")");
    uint64_t slide = 0;
    if (auto off = sys->dump_->vmcoreinfo_value("KERNELOFFSET")) slide = parse_hex(*off);

    say("reading type layouts from " + vmlinux);
    sys->types_ = Types::open(vmlinux);
    sys->kernel_ = std::make_unique<LinuxKernel>(*sys->dump_, *sys->vmlinux_, *sys->types_, slide);
    sys->kernel_->check_banner();
    sys->release_ = sys->kernel_->release();
    if (sys->release_ != *osrelease)
        throw Error("vmlinux is " + sys->release_ + " but the dump is of " + *osrelease);

    say("reading tasks");
    sys->tasks_ = read_tasks(*sys->kernel_, sys->dump_->cpus());
    say("reading modules");
    sys->modules_ = read_modules(*sys->kernel_);
    KoLocator ko(opts.modules_dirs, sys->release_);
    for (auto& m : sys->modules_.modules) m.ko_path = ko.find(m.name);
    return sys;
}

const Module* LinuxSystem::module(const std::string& name) const {
    std::string want = name;
    std::replace(want.begin(), want.end(), '-', '_');
    for (const auto& m : modules_.modules)
        if (m.name == want) return &m;
    return nullptr;
}

std::vector<std::string> LinuxSystem::warnings() const {
    std::vector<std::string> w = tasks_.warnings;
    w.insert(w.end(), modules_.warnings.begin(), modules_.warnings.end());
    return w;
}

}  // namespace kq
