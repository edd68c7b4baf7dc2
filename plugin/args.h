// Command-line words of a `kmod` subcommand: flags, options with values,
// positionals.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kq {

struct Args {
    std::vector<std::string> positional;
    std::set<std::string> flags;                            // --json
    std::map<std::string, std::vector<std::string>> values;  // --modules-dir DIR (repeatable)

    bool flag(const std::string& f) const { return flags.count(f) != 0; }
    std::string value(const std::string& k, const std::string& dflt = "") const {
        auto it = values.find(k);
        return it == values.end() || it->second.empty() ? dflt : it->second.back();
    }
    const std::vector<std::string>& all(const std::string& k) const {
        static const std::vector<std::string> none;
        auto it = values.find(k);
        return it == values.end() ? none : it->second;
    }
};

// A whole word as an unsigned number: decimal, or hex with 0x.
std::optional<uint64_t> parse_number(const std::string& word);

// `with_value` names the options that take a value ("--modules-dir").
// Throws kq::Error on an unknown option or a missing value.
Args parse_args(char** argv, const std::set<std::string>& known_flags,
                const std::set<std::string>& with_value);

}  // namespace kq
