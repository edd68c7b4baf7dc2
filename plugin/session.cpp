#include "plugin/session.h"

#include <chrono>
#include <filesystem>
#include <list>
#include <thread>

#include "symbols/split_function_ranges.h"
#include "vmcore/flattened.h"

namespace kq {
namespace {

std::list<std::unique_ptr<Session>>& sessions() {
    static std::list<std::unique_ptr<Session>> s;
    return s;
}
std::list<lldb::SBTarget>& session_targets() {
    static std::list<lldb::SBTarget> t;
    return t;
}

}  // namespace

Session::~Session() {
    if (server_) server_->stop();
}

Session& Session::of(lldb::SBTarget& target) {
    auto t = session_targets().begin();
    for (auto s = sessions().begin(); s != sessions().end(); ++s, ++t)
        if (*t == target) return **s;
    throw Error("no kernel is open in this target: run 'kmod core VMCORE' after 'target create VMLINUX'");
}

void Session::close(lldb::SBTarget& target) {
    auto t = session_targets().begin();
    for (auto s = sessions().begin(); s != sessions().end(); ++s, ++t)
        if (*t == target) {
            sessions().erase(s);
            session_targets().erase(t);
            return;
        }
}

Session& Session::open_core(lldb::SBDebugger& dbg, lldb::SBTarget& target, const std::string& dump,
                            const OpenOptions& opts) {
    if (!target.IsValid() || !target.GetExecutable().IsValid())
        throw Error("no target: run 'target create VMLINUX' first (the vmlinux with debug info of the dumped kernel)");
    if (target.GetProcess().IsValid() && target.GetProcess().GetState() != lldb::eStateDetached &&
        target.GetProcess().GetState() != lldb::eStateExited && target.GetProcess().GetState() != lldb::eStateInvalid)
        throw Error("the target already has a process: create a new target for another dump");
    char path[4096];
    target.GetExecutable().GetPath(path, sizeof path);

    auto s = std::make_unique<Session>();
    s->target_ = target;
    s->dump_path_ = dump;
    s->system_ = LinuxSystem::open_dump(path, dump, opts);
    auto& sys = *s->system_;
    lldb::SBModule kernel_module = s->use_symbol_copy(target, path, opts.progress);
    s->remote_target_ = std::make_unique<DumpTarget>(sys.dump(), sys.threads(), sys.kernel().slide());
    s->server_ = std::make_unique<GdbServer>(*s->remote_target_);
    int port = s->server_->start();

    if (opts.progress) opts.progress("connecting LLDB to the dump's " + std::to_string(sys.threads().size()) + " tasks");
    // Connected as `process connect` does in synchronous mode: the stop that
    // ends the connection is printed into this command's result (dropped),
    // not later by the debugger's event thread in the middle of the next
    // command's output.
    const std::string url = "connect://127.0.0.1:" + std::to_string(port);
    const bool was_async = dbg.GetAsync();
    dbg.SetAsync(false);
    lldb::SBCommandReturnObject ret;
    dbg.GetCommandInterpreter().HandleCommand(("process connect --plugin gdb-remote " + url).c_str(), ret);
    dbg.SetAsync(was_async);
    lldb::SBProcess proc = target.GetProcess();
    if (!ret.Succeeded() || !proc.IsValid())
        throw Error(std::string("LLDB could not connect to the dump server: ") + (ret.GetError() ? ret.GetError() : "?"));
    if (proc.GetState() != lldb::eStateStopped)
        throw Error("LLDB connected to the dump server but the process did not stop (state " +
                    std::string(lldb::SBDebugger::StateAsCString(proc.GetState())) + ")");

    // vmlinux at its KASLR'd address; modules at the kernel's section addresses.
    target.SetModuleLoadAddress(kernel_module, static_cast<int64_t>(sys.kernel().slide()));
    s->load_modules(target, opts.progress);

    sessions().push_back(std::move(s));
    session_targets().push_back(target);
    return *sessions().back();
}

// LLDB reads vmlinux from a copy whose split functions cover only their hot
// part (see symbols/split_function_ranges.h): without it LLDB's unwinder
// hangs on the first thread that passes through such a function. The copy
// replaces vmlinux in the target (as a separate symbol file it would bring
// its own, unloaded, sections). Returns the module that holds the kernel.
lldb::SBModule Session::use_symbol_copy(lldb::SBTarget& target, const std::string& vmlinux,
                                        const std::function<void(const std::string&)>& say) {
    lldb::SBModule orig = target.GetModuleAtIndex(0);
    const ElfImage& img = system_->vmlinux();
    if (img.build_id().empty()) return orig;
    // Same file name as vmlinux, so LLDB names frames as it would.
    const std::string dir = cache_root(DumpOptions{}) + "/lldb-symbols/" + img.build_id();
    const std::string copy = dir + "/" + std::filesystem::path(vmlinux).filename().string();
    std::error_code ec;
    if (!std::filesystem::exists(copy, ec)) {
        if (split_functions(img).empty()) return orig;
        if (say) say("writing a copy of " + vmlinux + " with split functions' ranges fixed for LLDB (once, into " + dir + ")");
        std::filesystem::create_directories(dir, ec);
        if (write_collapsed_copy(img, copy) == 0) return orig;
    }
    lldb::SBModule m = target.AddModule(copy.c_str(), nullptr, nullptr);
    if (!m.IsValid()) {
        if (say) say("LLDB could not load " + copy + "; its unwinder may hang on split functions");
        return orig;
    }
    target.RemoveModule(orig);
    return m;
}

const Module& Session::module(const std::string& name) const {
    if (const Module* m = system_->module(name)) return *m;
    std::string names;
    for (const auto& m : system_->modules()) names += (names.empty() ? "" : ", ") + m.name;
    throw Error("module " + name + " is not loaded; loaded: " + (names.empty() ? "none" : names));
}

LinuxUnwinder& Session::unwinder() {
    if (!unwinder_) unwinder_ = std::make_unique<LinuxUnwinder>(system_->kernel(), system_->modules());
    return *unwinder_;
}

void Session::load_modules(lldb::SBTarget& target, const std::function<void(const std::string&)>& say) {
    for (const auto& m : system_->modules()) {
        if (m.ko_path.empty()) continue;
        lldb::SBModule mod = target.AddModule(m.ko_path.c_str(), nullptr, nullptr);
        if (!mod.IsValid()) {
            if (say) say("LLDB could not load " + m.ko_path);
            continue;
        }
        bool has_init = false;
        for (const auto& r : m.ranges)
            if (r.what.rfind("init ", 0) == 0) has_init = true;
        size_t placed = 0;
        for (uint32_t i = 0; i < mod.GetNumSections(); ++i) {
            lldb::SBSection sec = mod.GetSectionAtIndex(i);
            const char* name = sec.GetName();
            if (!name) continue;
            std::string n = name;
            // Init sections are freed once the module is live: their recorded
            // addresses may belong to something else by now.
            if (!has_init && n.rfind(".init", 0) == 0) continue;
            for (const auto& ks : m.sections)
                if (ks.name == n) {
                    target.SetSectionLoadAddress(sec, ks.addr);
                    ++placed;
                    break;
                }
        }
        if (placed) ++modules_loaded_;
    }
}

}  // namespace kq
