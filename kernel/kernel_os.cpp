#include "kernel/kernel_os.h"

#include <cstring>

namespace kq {

const char* to_string(KernelOs os) {
    switch (os) {
        case KernelOs::unknown: return "unknown";
        case KernelOs::Linux: return "Linux";
        case KernelOs::FreeBSD: return "FreeBSD";
    }
    return "?";
}

// The string an image variable holds in the file ("" if none).
static std::string image_string(const ElfImage& image, const char* name) {
    const ElfSymbol* s = image.symbol(name);
    if (!s) return {};
    auto b = image.bytes_at(s->value, 64);
    const char* p = reinterpret_cast<const char*>(b.data());
    return std::string(p, strnlen(p, b.size()));
}

KernelOs detect_os(const ElfImage& image) {
    if (image_string(image, "ostype") == "FreeBSD" && image.symbol("version")) return KernelOs::FreeBSD;
    if (image.symbol("linux_banner")) return KernelOs::Linux;
    return KernelOs::unknown;
}

KernelOs detect_os(const std::string& path) { return detect_os(*ElfImage::open(path)); }

}  // namespace kq
