// Names kernel and module addresses for reports, from kernel.debug's
// symbols and each module's .ko (its sections where the kernel loaded
// them): "kq_fbsd_sc+0x20 [kq_fbsd]", "sleepq_timeout".
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "symbols/elf_image.h"

namespace kq {

class FreebsdSymbolizer {
public:
    // Opens each module's ko_path; a module without one is named by section
    // ("[kq_fbsd] .bss+0x18").
    FreebsdSymbolizer(const ElfImage& kernel, const std::vector<Module>& modules);
    ~FreebsdSymbolizer();

    // "symbol+0xoff" ("symbol" at its start), with " [module]" for a
    // module's; "" if no symbol or section holds addr.
    std::string name(uint64_t addr) const;

private:
    struct Section {
        uint64_t start = 0, end = 0;
        std::string name;
        unsigned shndx = 0;
        const ElfImage* ko = nullptr;
        std::string module;
    };
    const ElfImage& kernel_;
    std::vector<std::unique_ptr<ElfImage>> kos_;
    std::vector<Section> sections_;  // sorted by start
};

}  // namespace kq
