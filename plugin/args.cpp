#include "plugin/args.h"

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

}  // namespace kq
