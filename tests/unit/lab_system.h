// The lab's real dumps for unit tests: $KQ_DUMPS (a dump set with kaslr.elf)
// and $KQ_VMLINUX, as `scripts/lab env` prints them. Tests skip without them.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "kernel/linux/linux_system.h"
#include "symbols/elf_image.h"

namespace kq::test {

struct Lab {
    std::string dumps, vmlinux;  // both empty when the lab is not there
    bool present() const { return !dumps.empty(); }
};

inline const Lab& lab() {
    static const Lab l = [] {
        const char* d = std::getenv("KQ_DUMPS");
        const char* v = std::getenv("KQ_VMLINUX");
        if (d && *d && v && *v && std::filesystem::exists(std::string(d) + "/kaslr.elf") && std::filesystem::exists(v))
            return Lab{d, v};
        return Lab{};
    }();
    return l;
}

#define KQ_NEED_LAB() \
    if (!kq::test::lab().present()) GTEST_SKIP() << "set KQ_DUMPS and KQ_VMLINUX (scripts/lab env) to run this test"

// A dump of the set, opened once for the whole test program, with the
// set's .ko files.
inline LinuxSystem& lab_system(const std::string& file) {
    static std::map<std::string, std::unique_ptr<LinuxSystem>> open;
    auto& s = open[file];
    if (!s) {
        OpenOptions opts;
        opts.modules_dirs = {lab().dumps + "/modules"};
        s = LinuxSystem::open_dump(lab().vmlinux, lab().dumps + "/" + file, opts);
    }
    return *s;
}

// Runtime address of a symbol of a module's .ko: its value plus the address
// the kernel gave its section. Throws std::runtime_error if there is none.
inline uint64_t module_symbol(const LinuxSystem& sys, const std::string& module, const std::string& name) {
    const Module* m = sys.module(module);
    if (!m || m->ko_path.empty()) throw std::runtime_error("module not loaded or no .ko: " + module);
    auto ko = ElfImage::open(m->ko_path);
    if (const ElfSymbol* s = ko->symbol(name))
        for (const auto& sec : ko->sections())
            if (sec.index == s->shndx)
                for (const auto& ms : m->sections)
                    if (ms.name == sec.name) return ms.addr + s->value;
    throw std::runtime_error("no symbol " + name + " in " + module);
}

}  // namespace kq::test
