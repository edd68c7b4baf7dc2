// Finds the .ko file of a loaded module.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace kq {

class KoLocator {
public:
    // Search order: each of dirs (recursively), then the debug tree
    // /usr/lib/debug/lib/modules/<release>/, then /lib/modules/<release>/.
    KoLocator(std::vector<std::string> dirs, const std::string& release);

    // Path of the .ko for a module name ("kq_sleep"; '-' and '_' are the
    // same to the kernel), "" if none. Compressed modules are not used.
    std::string find(const std::string& module_name);

    const std::vector<std::string>& search_path() const { return dirs_; }

private:
    void index(size_t i);
    std::vector<std::string> dirs_;
    std::vector<std::map<std::string, std::string>> indexes_;  // per dir, built lazily
    std::vector<bool> indexed_;
};

}  // namespace kq
