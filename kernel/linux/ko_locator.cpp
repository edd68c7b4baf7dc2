#include "kernel/linux/ko_locator.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace fs = std::filesystem;

namespace kq {

static std::string normalize(std::string s) {
    std::replace(s.begin(), s.end(), '-', '_');
    return s;
}

KoLocator::KoLocator(std::vector<std::string> dirs, const std::string& release) : dirs_(std::move(dirs)) {
    if (!release.empty()) {
        dirs_.push_back("/usr/lib/debug/lib/modules/" + release);
        dirs_.push_back("/lib/modules/" + release);
    }
    indexes_.resize(dirs_.size());
    indexed_.resize(dirs_.size(), false);
}

void KoLocator::index(size_t i) {
    indexed_[i] = true;
    std::error_code ec;
    fs::recursive_directory_iterator it(dirs_[i], fs::directory_options::skip_permission_denied, ec), end;
    // The first file of a name wins; a bound keeps a huge tree from stalling.
    for (size_t n = 0; !ec && it != end && n < 200000; it.increment(ec), ++n) {
        const fs::path& p = it->path();
        if (p.extension() != ".ko" || !it->is_regular_file(ec)) continue;
        indexes_[i].emplace(normalize(p.stem().string()), p.string());
    }
}

std::string KoLocator::find(const std::string& module_name) {
    std::string key = normalize(module_name);
    for (size_t i = 0; i < dirs_.size(); ++i) {
        if (!indexed_[i]) index(i);
        if (auto f = indexes_[i].find(key); f != indexes_[i].end()) return f->second;
    }
    return {};
}

}  // namespace kq
