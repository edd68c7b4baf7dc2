// Which OS a kernel image is, from the image alone, so that users never say:
// FreeBSD's kernel (kernel.debug) has `ostype` ("FreeBSD") and `version`,
// Linux's vmlinux has `linux_banner`.
#pragma once
#include <cstdint>
#include <string>

#include "symbols/elf_image.h"

namespace kq {

enum class KernelOs : uint8_t { unknown, Linux, FreeBSD };
const char* to_string(KernelOs os);

KernelOs detect_os(const ElfImage& image);
// Opens the file; throws kq::Error if it is not a readable ELF file.
KernelOs detect_os(const std::string& path);

}  // namespace kq
