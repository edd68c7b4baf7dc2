#include "kernel/linux/live_physical.h"

#include <array>

#include "kernel/linux/e820.h"
#include "unwinder/frame.h"
#include "vmcore/amd64_page_walk.h"

namespace kq {

LivePhysical::LivePhysical(MemorySource& mem, uint64_t direct_map, uint64_t pml4_phys,
                           std::vector<std::pair<uint64_t, uint64_t>> ram)
    : mem_(mem), direct_map_(direct_map), pml4_(pml4_phys), ram_(std::move(ram)) {}

std::unique_ptr<LivePhysical> LivePhysical::open(LinuxKernel& k) {
    const uint64_t direct_map = k.direct_map_base();
    if (!direct_map) throw Error("the kernel's direct map base (page_offset_base) is unreadable");
    const auto table = k.read_u64(k.symbol("e820_table"));
    if (!table) throw Error("the kernel's e820_table pointer is unreadable");
    auto ram = e820_ram(k.mem(), k.types(), *table);

    // __pa_symbol(): an image address less the image mapping's base
    // (__START_KERNEL_map, which the linker script's phys_startup_64 =
    // startup_64 - __START_KERNEL_map tells) plus phys_base, where the
    // kernel was loaded in physical memory relative to that mapping.
    const ElfSymbol* startup = k.vmlinux().symbol("startup_64");
    const ElfSymbol* phys_startup = k.vmlinux().symbol("phys_startup_64");
    if (!startup || !phys_startup) throw Error("vmlinux has no startup_64 or phys_startup_64: not an x86-64 kernel");
    const uint64_t image_map = startup->value - phys_startup->value;
    const auto phys_base = k.read_u64(k.symbol("phys_base"));
    if (!phys_base) throw Error("the kernel's phys_base is unreadable");
    const uint64_t pgt = k.symbol("init_top_pgt");
    const uint64_t pml4 = pgt - image_map + *phys_base;

    // The table read through the direct map must be the one the image has.
    auto live = std::make_unique<LivePhysical>(k.mem(), direct_map, pml4, std::move(ram));
    std::array<uint8_t, 4096> by_image, by_phys;
    if (!k.mem().read_exact(pgt, by_image.data(), by_image.size()) ||
        live->read_phys(pml4, by_phys.data(), by_phys.size()) != by_phys.size() || by_image != by_phys)
        throw Error("the kernel's page table init_top_pgt is not at physical " + hex_text(pml4) +
                    " (phys_base " + hex_text(*phys_base) + ")");
    return live;
}

size_t LivePhysical::read_phys(uint64_t paddr, void* buf, size_t len) {
    return mem_.read(direct_map_ + paddr, buf, len);
}

size_t LivePhysical::read_phys_bulk(uint64_t paddr, void* buf, size_t len) {
    return mem_.read_bulk(direct_map_ + paddr, buf, len);
}

std::optional<uint64_t> LivePhysical::to_phys(uint64_t vaddr) {
    const amd64::Walk w = amd64::walk_pml4(pml4_, vaddr, [&](uint64_t pa, uint64_t* entry) {
        return read_phys(pa, entry, sizeof *entry) == sizeof *entry;
    });
    if (!w.ok()) return std::nullopt;
    return w.paddr;
}

}  // namespace kq
