// The FreeBSD fixture (corefiles/freebsd) for unit tests: the kernel image,
// the module, the two dump forms of each scenario, and fixture.txt, where
// the generator wrote what it planted, one fact a line ("thread TID VA NAME
// STATE kernel|module", "map NAME VA PA SIZE", ...).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "symbols/elf_image.h"
#include "vmcore/dump.h"

namespace kq::fbsdtest {

#ifdef KQ_FBSD_FIXTURE_DIR
inline const std::string kDir = KQ_FBSD_FIXTURE_DIR;
#else
inline const std::string kDir;
#endif

inline std::string kernel_path() { return kDir + "/kernel.debug"; }
inline std::string ko_path() { return kDir + "/kq_fbsd.ko"; }
inline std::string minidump_path(const std::string& scenario = "busy") { return kDir + "/" + scenario + "/vmcore.minidump"; }
inline std::string elf_path(const std::string& scenario = "busy") { return kDir + "/" + scenario + "/vmcore.elf"; }

#define KQ_NEED_FBSD_FIXTURE()                                                                          \
    if (kq::fbsdtest::kDir.empty() || !std::filesystem::exists(kq::fbsdtest::minidump_path("idle")))   \
    GTEST_SKIP() << "FreeBSD fixture not built (corefiles/freebsd)"

constexpr uint64_t kKernbase = 0xffffffff80000000;
constexpr uint64_t kDmapBase = 0xfffff80000000000;

// fixture.txt of a scenario: its lines split into words.
class Manifest {
public:
    explicit Manifest(const std::string& scenario = "busy") {
        std::ifstream in(kDir + "/" + scenario + "/fixture.txt");
        std::string line;
        while (std::getline(in, line)) {
            std::istringstream words(line);
            std::vector<std::string> w;
            for (std::string x; words >> x;) w.push_back(x);
            if (!w.empty()) lines_.push_back(std::move(w));
        }
    }
    // Every line whose first words are these.
    std::vector<std::vector<std::string>> all(const std::vector<std::string>& prefix) const {
        std::vector<std::vector<std::string>> r;
        for (const auto& l : lines_)
            if (l.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), l.begin())) r.push_back(l);
        return r;
    }
    // Word `i` of the only such line, as a number (hex with 0x).
    uint64_t num(const std::vector<std::string>& prefix, size_t i) const {
        auto r = all(prefix);
        if (r.size() != 1 || r[0].size() <= i) throw std::runtime_error("fixture.txt: no line " + prefix[0]);
        return std::stoull(r[0][i], nullptr, 0);
    }

private:
    std::vector<std::vector<std::string>> lines_;
};

// DumpOptions that know the fixture kernel's symbols.
inline DumpOptions kernel_options(std::vector<std::string>* notes = nullptr) {
    static std::shared_ptr<ElfImage> kernel = ElfImage::open(kernel_path());
    DumpOptions o;
    o.kernel_symbol = [](std::string_view name) -> std::optional<uint64_t> {
        if (const ElfSymbol* s = kernel->symbol(name)) return s->value;
        return std::nullopt;
    };
    if (notes) {
        o.note = [](void* ctx, const std::string& line) { static_cast<std::vector<std::string>*>(ctx)->push_back(line); };
        o.note_ctx = notes;
    }
    return o;
}

inline std::vector<uint8_t> file_prefix(const std::string& path, size_t n) {
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> b(n);
    in.read(reinterpret_cast<char*>(b.data()), std::streamsize(n));
    b.resize(size_t(in.gcount()));
    return b;
}

}  // namespace kq::fbsdtest
