// kmod threads: every kernel task and its stack, frames in a module marked.
#include <cstdio>
#include <unordered_map>

#include "plugin/commands.h"
#include "plugin/json.h"
#include "plugin/session.h"

namespace kq {
namespace {

constexpr uint32_t kMaxFrames = 128;

struct FrameInfo {
    uint64_t pc = 0;
    std::string symbol;
    uint64_t offset = 0;
    std::string module;  // "vmlinux", a module name, or "" if unknown
    bool inlined = false;
};

std::string hex(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%#llx", static_cast<unsigned long long>(v));
    return b;
}

// Which image an address belongs to: a module by its kernel ranges, else
// vmlinux when LLDB symbolizes it from the executable.
std::string owner(const LinuxSystem& sys, lldb::SBTarget& target, lldb::SBFrame& f, uint64_t pc) {
    for (const auto& m : sys.modules())
        if (m.contains(pc)) return m.name;
    lldb::SBModule mod = f.GetModule();
    if (mod.IsValid() && mod == target.GetModuleAtIndex(0)) return "vmlinux";
    return {};
}

std::vector<FrameInfo> frames_of(const LinuxSystem& sys, lldb::SBTarget& target, lldb::SBThread& th) {
    std::vector<FrameInfo> out;
    for (uint32_t i = 0; i < kMaxFrames; ++i) {
        lldb::SBFrame f = th.GetFrameAtIndex(i);
        if (!f.IsValid()) break;
        FrameInfo fi;
        fi.pc = f.GetPC();
        fi.inlined = f.IsInlined();
        lldb::SBSymbol sym = f.GetSymbol();
        const char* fn = f.IsInlined() ? f.GetFunctionName() : nullptr;
        if (sym.IsValid()) {
            fi.symbol = fn ? fn : sym.GetName();
            uint64_t start = sym.GetStartAddress().GetLoadAddress(target);
            if (start != LLDB_INVALID_ADDRESS && start <= fi.pc) fi.offset = fi.pc - start;
        } else if (fn) {
            fi.symbol = fn;
        }
        fi.module = owner(sys, target, f, fi.pc);
        out.push_back(std::move(fi));
    }
    return out;
}

void threads(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    auto& sys = s.system();
    std::string want = args.value("--module");
    if (!want.empty()) {
        const Module* m = sys.module(want);
        if (!m) {
            std::string names;
            for (const auto& mm : sys.modules()) names += (names.empty() ? "" : ", ") + mm.name;
            throw Error("module " + want + " is not loaded; loaded: " + (names.empty() ? "none" : names));
        }
        want = m->name;
    }
    bool all = want.empty() || args.flag("--all");

    std::unordered_map<int64_t, const Thread*> by_id;
    for (const auto& t : sys.threads()) by_id[t.id] = &t;

    lldb::SBProcess proc = target.GetProcess();
    uint32_t n = proc.GetNumThreads();
    Json j;
    j.begin_object();
    j.key("module");
    if (want.empty()) j.null(); else j.value(want);
    j.key("threads").begin_array();
    std::string text;
    size_t shown = 0, matching = 0;
    for (uint32_t i = 0; i < n; ++i) {
        if (i % 256 == 255) progress(dbg, "unwound " + std::to_string(i + 1) + "/" + std::to_string(n) + " tasks");
        lldb::SBThread th = proc.GetThreadAtIndex(i);
        auto it = by_id.find(static_cast<int64_t>(th.GetThreadID()));
        if (it == by_id.end()) continue;
        const Thread& t = *it->second;
        auto frames = frames_of(sys, target, th);
        bool hit = false;
        for (const auto& f : frames) hit |= !want.empty() && f.module == want;
        matching += hit;
        if (!all && !hit) continue;
        ++shown;
        int64_t pid = t.id >= kIdleThreadIdBase ? 0 : t.id;
        j.begin_object()
            .field("pid", pid)
            .field("tid", static_cast<int64_t>(th.GetThreadID()))
            .field("comm", t.name)
            .field("state", t.state)
            .field("cpu", t.cpu)
            .field("on_cpu", t.on_cpu)
            .field_addr("task", t.task)
            .field("in_module", hit);
        j.key("frames").begin_array();
        char line[512];
        snprintf(line, sizeof line, "%s%lld %s  %s\n", hit ? "* " : "", static_cast<long long>(pid), t.name.c_str(),
                 describe_thread_state(t).c_str());
        text += line;
        for (size_t k = 0; k < frames.size(); ++k) {
            const auto& f = frames[k];
            bool mark = !want.empty() && f.module == want;
            j.begin_object()
                .field("index", static_cast<uint64_t>(k))
                .field_addr("pc", f.pc)
                .field("symbol", f.symbol)
                .field("offset", f.offset);
            j.key("module");
            if (f.module.empty()) j.null(); else j.value(f.module);
            j.field("in_module", mark).field("inlined", f.inlined).end_object();
            std::string sym = f.symbol.empty() ? "??" : f.symbol + "+" + hex(f.offset);
            snprintf(line, sizeof line, "  %s#%-2zu %s %s%s [%s]\n", mark ? "=>" : "  ", k, hex(f.pc).c_str(),
                     f.inlined ? "(inlined) " : "", sym.c_str(), f.module.empty() ? "?" : f.module.c_str());
            text += line;
        }
        j.end_array().end_object();
    }
    j.end_array();
    j.field("total_threads", static_cast<uint64_t>(n)).field("matching_threads", static_cast<uint64_t>(matching));
    j.end_object();
    if (args.flag("--json")) {
        out = j.str() + "\n";
        return;
    }
    out = text;
    if (want.empty()) out += std::to_string(n) + " tasks\n";
    else out += std::to_string(matching) + " of " + std::to_string(n) + " tasks have a frame in " + want + "\n";
}

}  // namespace

void register_threads(lldb::SBCommand& kmod) {
    add_command(kmod, {"threads", "Every kernel task and its stack; frames inside a module marked.",
                       "kmod threads [--module M [--all]] [--json]\n"
                       "  --module M  show the tasks with a frame in module M (frames marked '=>');\n"
                       "              with --all, every task, still marking M's frames\n"
                       "  --json      machine-readable output",
                       {"--json", "--all"}, {"--module"}, threads});
}

}  // namespace kq
