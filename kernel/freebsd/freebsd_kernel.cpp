#include "kernel/freebsd/freebsd_kernel.h"

#include <cstdio>
#include <cstring>

namespace kq {

// Bounds on what a kernel's globals may claim, so that garbage is refused.
constexpr int64_t kMaxCpus = 65536;

FreebsdKernel::FreebsdKernel(MemorySource& mem, const ElfImage& image, Types& types)
    : mem_(mem), image_(image), types_(types) {}

std::optional<uint64_t> FreebsdKernel::find_symbol(std::string_view name) const {
    const ElfSymbol* s = image_.symbol(name);
    if (!s) return std::nullopt;
    return s->value;
}

uint64_t FreebsdKernel::symbol(std::string_view name) const {
    if (auto a = find_symbol(name)) return *a;
    throw Error("symbol " + std::string(name) + " not found in " + image_.path());
}

std::optional<int64_t> FreebsdKernel::read_int(uint64_t obj, std::string_view type, std::string_view member) const {
    const uint64_t o = off(type, member);
    const uint64_t size = types_.member_size(type, member).value_or(4);
    uint64_t v = 0;
    if (size == 0 || size > 8 || !mem_.read_exact(obj + o, &v, size)) return std::nullopt;
    if (size < 8 && (v >> (size * 8 - 1)) & 1) v |= ~0ull << (size * 8);
    return static_cast<int64_t>(v);
}

std::string FreebsdKernel::read_name(uint64_t obj, std::string_view type, std::string_view member) const {
    const uint64_t o = off(type, member);
    const uint64_t size = types_.member_size(type, member).value_or(8);
    if (size == 8) {  // a char *: the string it points to
        auto p = mem_.read_u64(obj + o);
        return p && *p ? mem_.read_cstr(*p, 256) : std::string();
    }
    return mem_.read_cstr(obj + o, size);
}

uint64_t FreebsdKernel::read_u64_or_throw(uint64_t a, std::string_view what) const {
    if (auto v = mem_.read_u64(a)) return *v;
    char buf[32];
    snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(a));
    throw Error("cannot read " + std::string(what) + " at " + buf);
}

std::string FreebsdKernel::version() const { return mem_.read_cstr(symbol("version"), 512); }

std::string FreebsdKernel::image_version() const {
    const ElfSymbol* s = image_.symbol("version");
    if (!s) return {};
    auto b = image_.bytes_at(s->value, 512);
    const char* p = reinterpret_cast<const char*>(b.data());
    return std::string(p, strnlen(p, b.size()));
}

void FreebsdKernel::check_version() const {
    auto trim = [](std::string s) {
        while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
        return s;
    };
    const std::string want = trim(image_version());
    if (want.empty()) throw Error(image_.path() + " has no version string: not a FreeBSD kernel");
    const std::string got = trim(version());
    if (want != got)
        throw Error("the kernel image does not match the kernel in memory: " + image_.path() + " is \"" + want +
                    "\", memory holds \"" + (got.empty() ? std::string("<unreadable>") : got) + "\"");
}

const std::vector<int>& FreebsdKernel::cpus() const {
    if (cpus_) return *cpus_;
    cpus_.emplace();
    auto maxid_at = find_symbol("mp_maxid");
    auto table = find_symbol("cpuid_to_pcpu");
    std::optional<uint32_t> maxid;
    if (maxid_at) maxid = mem_.read_as<uint32_t>(*maxid_at);
    if (!maxid || !table || *maxid >= kMaxCpus) {
        cpus_->push_back(0);
        return *cpus_;
    }
    for (int c = 0; c <= static_cast<int>(*maxid); ++c) {
        auto pc = mem_.read_u64(*table + 8ull * c);
        if (pc && *pc) cpus_->push_back(c);
    }
    if (cpus_->empty()) cpus_->push_back(0);
    return *cpus_;
}

uint64_t FreebsdKernel::pcpu(int cpu) const {
    if (auto table = find_symbol("cpuid_to_pcpu"))
        if (auto pc = mem_.read_u64(*table + 8ull * cpu)) return *pc;
    return 0;
}

uint64_t FreebsdKernel::dpcpu(std::string_view symbol_name, int cpu) const {
    const uint64_t base = symbol(symbol_name);
    const uint64_t off = read_u64_or_throw(symbol("dpcpu_off") + 8ull * cpu, "dpcpu_off[" + std::to_string(cpu) + "]");
    return base + off;
}

}  // namespace kq
