#include "kernel/linux/linux_system.h"

#include <algorithm>

#include "kernel/linux/survey.h"
#include "vmcore/freebsd_dump.h"

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
    dopts.kcore = opts.kcore;
    say((opts.kcore ? "opening " : "opening dump ") + dump);
    sys->dump_ = Dump::open(dump, dopts);
    if (dynamic_cast<FreebsdDump*>(sys->dump_.get()))
        throw Error(dump + " is a " + sys->dump_->format() + ", not a Linux dump: pass its kernel.debug, not " + vmlinux);
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

    sys->mem_ = sys->dump_.get();
    sys->modules_dirs_ = opts.modules_dirs;
    say("reading tasks");
    sys->tasks_ = read_tasks(*sys->kernel_, sys->dump_->cpus());
    say("reading modules");
    sys->modules_ = read_modules(*sys->kernel_);
    KoLocator ko(opts.modules_dirs, sys->release_);
    for (auto& m : sys->modules_.modules) m.ko_path = ko.find(m.name);
    return sys;
}

void LinuxSystem::read_all(const std::vector<CpuState>& cpus) {
    tasks_ = read_tasks(*kernel_, cpus);
    modules_ = read_modules(*kernel_);
    KoLocator ko(modules_dirs_, release_);
    for (auto& m : modules_.modules) m.ko_path = ko.find(m.name);
}

namespace {

// The kernel image's text, at link time.
struct TextRange {
    uint64_t start = 0, end = 0;
};

// Offsets to try, most likely first: none (nokaslr), those that put a
// CPU's PC inside the text, then every 2 MiB step of the 1 GiB the x86-64
// kernel image is randomized in (CONFIG_PHYSICAL_ALIGN is a multiple of
// 2 MiB). Each costs one page read, and unmapped ones fail at once.
std::vector<uint64_t> slide_candidates(const TextRange& text, const std::vector<CpuState>& vcpus) {
    constexpr uint64_t kStep = 2ull << 20, kRange = 1ull << 30;
    std::vector<uint64_t> c{0};
    for (const auto& v : vcpus) {
        if (!v.regs.has(Reg::rip)) continue;
        const uint64_t pc = v.regs.get(Reg::rip);
        if (pc < text.start || pc - text.start >= kRange) continue;
        for (uint64_t s = (pc - text.start) & ~(kStep - 1);; s -= kStep) {
            if (pc - s >= text.end) break;
            c.push_back(s);
            if (s == 0) break;
        }
    }
    for (uint64_t s = kStep; s < kRange; s += kStep) c.push_back(s);
    return c;
}

}  // namespace

std::unique_ptr<LinuxSystem> LinuxSystem::open_live(const std::string& vmlinux, MemorySource& mem,
                                                    const std::vector<CpuState>& vcpus, const OpenOptions& opts) {
    auto say = [&](const std::string& s) {
        if (opts.progress) opts.progress(s);
    };
    auto sys = std::make_unique<LinuxSystem>();
    sys->mem_ = &mem;
    sys->modules_dirs_ = opts.modules_dirs;
    sys->vmlinux_ = ElfImage::open(vmlinux);
    sys->types_ = Types::open(vmlinux);
    const ElfSymbol* text = sys->vmlinux_->symbol("_text");
    const ElfSymbol* etext = sys->vmlinux_->symbol("_etext");
    if (!text || !etext || !sys->vmlinux_->symbol("linux_banner"))
        throw Error(vmlinux + " has no _text, _etext or linux_banner: not a Linux vmlinux");

    say("finding the kernel's KASLR offset");
    std::string last;
    for (uint64_t slide : slide_candidates({text->value, etext->value}, vcpus)) {
        auto k = std::make_unique<LinuxKernel>(mem, *sys->vmlinux_, *sys->types_, slide);
        try {
            k->check_banner();
        } catch (const Error& e) {
            if (slide == 0) last = e.what();
            continue;
        }
        sys->kernel_ = std::move(k);
        break;
    }
    if (!sys->kernel_)
        throw Error("vmlinux's linux_banner is nowhere in the running kernel's image range: not this kernel's vmlinux? (" +
                    last + ")");
    sys->release_ = sys->kernel_->release();
    say("reading tasks and modules");
    sys->read_all(sys->by_cpu(vcpus));
    return sys;
}

std::vector<int> LinuxSystem::cpu_of_vcpus(const std::vector<CpuState>& vcpus) const {
    std::vector<uint64_t> bases;
    if (auto off = kernel_->find_symbol("__per_cpu_offset"))
        for (int c = 0; c < kernel_->nr_cpus(); ++c) bases.push_back(kernel_->read_u64(*off + 8ull * c).value_or(0));
    std::vector<int> out;
    for (size_t i = 0; i < vcpus.size(); ++i) {
        int cpu = static_cast<int>(i);
        // In kernel mode GS holds the CPU's per-CPU base; in user mode the
        // kernel's is swapped out, and the index stands.
        if (vcpus[i].regs.has(Reg::gs_base))
            for (size_t c = 0; c < bases.size(); ++c)
                if (bases[c] && bases[c] == vcpus[i].regs.get(Reg::gs_base)) cpu = static_cast<int>(c);
        out.push_back(cpu);
    }
    return out;
}

// read_tasks wants the registers indexed by the kernel's CPU number.
std::vector<CpuState> LinuxSystem::by_cpu(const std::vector<CpuState>& vcpus) const {
    std::vector<int> cpu = cpu_of_vcpus(vcpus);
    std::vector<CpuState> out;
    for (size_t i = 0; i < vcpus.size(); ++i) {
        if (cpu[i] < 0 || cpu[i] > 8192) continue;
        if (out.size() <= static_cast<size_t>(cpu[i])) out.resize(cpu[i] + 1);
        out[cpu[i]] = vcpus[i];
        out[cpu[i]].cpu = cpu[i];
    }
    return out;
}

void LinuxSystem::reread(const std::vector<CpuState>& vcpus) { read_all(by_cpu(vcpus)); }

Dump& LinuxSystem::dump() {
    if (!dump_) throw Error("a live kernel has no dump file: this needs one (take a dump of the guest and open it with 'kmod core')");
    return *dump_;
}

PhysicalMemory& LinuxSystem::physical() {
    if (dump_) return *dump_;
    if (!live_physical_) live_physical_ = LivePhysical::open(*kernel_);
    return *live_physical_;
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

Range LinuxSystem::image_range() const {
    const auto text = kernel_->find_symbol("_text"), end = kernel_->find_symbol("_end");
    if (!text || !end || *end < *text) return {0, 0, "kernel image"};
    return {*text, *end - *text, "kernel image"};
}

std::optional<Thread> LinuxSystem::reread_thread(const Thread& t) const {
    if (!dump_ || !dump_->live() || t.id >= kIdleThreadIdBase) return std::nullopt;
    return read_task(*kernel_, t.task);
}

size_t LinuxSystem::cpu_count() const {
    return dump_ && !dump_->cpus().empty() ? dump_->cpus().size() : static_cast<size_t>(kernel_->nr_cpus());
}

Survey LinuxSystem::survey(const std::function<void(const std::string&)>& progress) const {
    return survey_linux({*kernel_, tasks_.threads, modules_.modules}, progress);
}

}  // namespace kq
