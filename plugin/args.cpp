#include "plugin/args.h"

#include <charconv>

#include "vmcore/memory_source.h"

namespace kq {

Args parse_args(char** argv, const std::set<std::string>& known_flags,
                const std::set<std::string>& with_value) {
    Args a;
    for (; argv && *argv; ++argv) {
        std::string w = *argv;
        if (w.size() > 2 && w.compare(0, 2, "--") == 0) {
            std::string val;
            bool has_val = false;
            if (auto eq = w.find('='); eq != std::string::npos) {
                val = w.substr(eq + 1);
                w = w.substr(0, eq);
                has_val = true;
            }
            if (with_value.count(w)) {
                if (!has_val) {
                    if (!argv[1]) throw Error(w + " needs a value");
                    val = *++argv;
                }
                a.values[w].push_back(val);
            } else if (known_flags.count(w) && !has_val) {
                a.flags.insert(w);
            } else {
                throw Error("unknown option " + w);
            }
        } else {
            a.positional.push_back(w);
        }
    }
    return a;
}

std::optional<uint64_t> parse_number(const std::string& word) {
    std::string_view s = word;
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2), base = 16;
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

}  // namespace kq
