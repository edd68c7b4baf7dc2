// kmod list: the loaded modules.
#include <cstdio>

#include "plugin/commands.h"
#include "plugin/json.h"
#include "plugin/session.h"

namespace kq {

static std::string hex(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%#llx", static_cast<unsigned long long>(v));
    return b;
}

static void list(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    lldb::SBTarget target = dbg.GetSelectedTarget();
    auto& sys = Session::of(target).kernel_system();
    if (args.flag("--json")) {
        Json j;
        j.begin_array();
        for (const auto& m : sys.modules()) {
            j.begin_object()
                .field("name", m.name)
                .field_addr("module", m.addr)
                .field("state", m.state)
                .field("refcount", m.refcount);
            j.key("ranges").begin_array();
            for (const auto& r : m.ranges)
                j.begin_object().field("what", r.what).field_addr("start", r.start).field("size", r.size).end_object();
            j.end_array();
            j.key("holders").begin_array();
            for (const auto& h : m.holders) j.value(h);
            j.end_array();
            j.key("ko");
            if (m.ko_path.empty()) j.null(); else j.value(m.ko_path);
            j.end_object();
        }
        j.end_array();
        out = j.str() + "\n";
        return;
    }
    char line[512];
    snprintf(line, sizeof line, "%-20s %-8s %4s  %-39s %s\n", "MODULE", "STATE", "REFS", "TEXT", ".KO");
    out += line;
    for (const auto& m : sys.modules()) {
        std::string text = "-";
        for (const auto& r : m.ranges)
            if (r.what == "text") text = hex(r.start) + "-" + hex(r.start + r.size);
        snprintf(line, sizeof line, "%-20s %-8s %4lld  %-39s %s\n", m.name.c_str(), m.state.c_str(),
                 static_cast<long long>(m.refcount), text.c_str(),
                 m.ko_path.empty() ? "not found" : m.ko_path.c_str());
        out += line;
        for (const auto& r : m.ranges)
            if (r.what != "text") {
                snprintf(line, sizeof line, "%-20s %-13s %s-%s\n", "", r.what.c_str(), hex(r.start).c_str(),
                         hex(r.start + r.size).c_str());
                out += line;
            }
        if (!m.holders.empty()) {
            out += std::string(21, ' ') + "used by:";
            for (const auto& h : m.holders) out += " " + h;
            out += "\n";
        }
    }
    out += std::to_string(sys.modules().size()) + " modules\n";
}

void register_list(lldb::SBCommand& kmod) {
    add_command(kmod, {"list", "List the kernel's modules: state, refcount, memory ranges, the .ko used.",
                       "kmod list [--json]\n"
                       "A module whose .ko was not found is listed as 'not found': analysis still\n"
                       "uses its ranges from kernel memory.",
                       {"--json"}, {}, list});
}

}  // namespace kq
