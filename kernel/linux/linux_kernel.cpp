#include "kernel/linux/linux_kernel.h"

#include <cstring>

namespace kq {

LinuxKernel::LinuxKernel(MemorySource& mem, const ElfImage& vmlinux, Types& types, uint64_t slide)
    : mem_(mem), vmlinux_(vmlinux), types_(types), slide_(slide) {}

std::optional<uint64_t> LinuxKernel::find_symbol(std::string_view name) const {
    const ElfSymbol* s = vmlinux_.symbol(name);
    if (!s) return std::nullopt;
    return s->value + slide_;
}

uint64_t LinuxKernel::symbol(std::string_view name) const {
    if (auto a = find_symbol(name)) return *a;
    throw Error("symbol " + std::string(name) + " not found in " + vmlinux_.path());
}

uint64_t LinuxKernel::read_u64_or_throw(uint64_t a, std::string_view what) const {
    if (auto v = mem_.read_u64(a)) return *v;
    char buf[32];
    snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(a));
    throw Error("cannot read " + std::string(what) + " at " + buf);
}

std::string LinuxKernel::banner() const { return mem_.read_cstr(symbol("linux_banner"), 512); }

std::string LinuxKernel::release() const {
    return mem_.read_cstr(symbol("init_uts_ns") + off("uts_namespace", "name.release"), 65);
}

// The banner as the vmlinux file holds it (in .rodata).
static std::string file_banner(const ElfImage& img) {
    const ElfSymbol* s = img.symbol("linux_banner");
    if (!s) return {};
    for (const auto& sec : img.sections()) {
        if (sec.addr == 0 || s->value < sec.addr || s->value >= sec.addr + sec.size) continue;
        auto data = img.section_data(sec);
        size_t at = s->value - sec.addr;
        if (at >= data.size()) return {};
        const char* p = reinterpret_cast<const char*>(data.data()) + at;
        return std::string(p, strnlen(p, data.size() - at));
    }
    return {};
}

void LinuxKernel::check_banner() const {
    std::string want = file_banner(vmlinux_);
    std::string got = banner();
    auto trim = [](std::string s) {
        while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
        return s;
    };
    if (want.empty()) throw Error(vmlinux_.path() + " has no linux_banner: not a Linux vmlinux");
    if (trim(want) != trim(got))
        throw Error("vmlinux does not match the kernel in memory: vmlinux is \"" + trim(want) +
                    "\", memory holds \"" + (got.empty() ? std::string("<unreadable>") : trim(got)) + "\"");
}

uint64_t LinuxKernel::direct_map_base() const {
    return read_u64(symbol("page_offset_base")).value_or(0);
}

int LinuxKernel::nr_cpus() const {
    if (nr_cpus_ < 0) {
        auto v = mem_.read_as<uint32_t>(symbol("nr_cpu_ids"));
        nr_cpus_ = (v && *v > 0 && *v <= 8192) ? static_cast<int>(*v) : 1;
    }
    return nr_cpus_;
}

uint64_t LinuxKernel::per_cpu(std::string_view symbol_name, int cpu) const {
    const ElfSymbol* s = vmlinux_.symbol(symbol_name);
    if (!s) throw Error("per-CPU symbol " + std::string(symbol_name) + " not found in " + vmlinux_.path());
    // x86-64 links .data..percpu at 0: its symbols are offsets, which KASLR
    // does not move; __per_cpu_offset[cpu] holds each CPU's base.
    uint64_t base = s->value;
    for (const auto& sec : vmlinux_.sections())
        if (sec.index == s->shndx && sec.name != ".data..percpu") base += slide_;
    uint64_t off = read_u64_or_throw(symbol("__per_cpu_offset") + 8ull * cpu, "__per_cpu_offset");
    return base + off;
}

}  // namespace kq
