#include "plugin/session.h"

#include <chrono>
#include <future>
#include <filesystem>
#include <list>
#include <thread>

#include "symbols/split_function_ranges.h"
#include "unwinder/freebsd_unwind.h"
#include "unwinder/linux_unwind.h"
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
        if (*t == target) {
            if ((*s)->kcore_) (*s)->refresh_kcore();
            return **s;
        }
    throw Error("no kernel is open in this target: run 'kmod core VMCORE' (a dump) or 'kmod attach HOST:PORT' (a live kernel)");
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

namespace {

// The value of an LLDB setting, e.g. "true" for target.preload-symbols.
std::string setting(lldb::SBDebugger& dbg, const char* name) {
    lldb::SBStringList v = lldb::SBDebugger::GetInternalVariableValue(name, dbg.GetInstanceName());
    return v.IsValid() && v.GetSize() ? v.GetStringAtIndex(0) : "";
}

// LLDB otherwise indexes all of vmlinux's DWARF (seconds, 1.5 GB) when the
// file is added; symbols and line tables still load when first needed, the
// name index when `expr` or a type lookup first asks.
class NoPreload {
public:
    explicit NoPreload(lldb::SBDebugger& dbg) : dbg_(dbg), old_(setting(dbg, "target.preload-symbols")) {
        lldb::SBDebugger::SetInternalVariable("target.preload-symbols", "false", dbg.GetInstanceName());
    }
    ~NoPreload() {
        if (!old_.empty())
            lldb::SBDebugger::SetInternalVariable("target.preload-symbols", old_.c_str(), dbg_.GetInstanceName());
    }

private:
    lldb::SBDebugger& dbg_;
    std::string old_;
};

// LLDB builds a name index of all of vmlinux's DWARF when it first looks
// up a function by name, which it does while connecting (about 2-3 s and
// 1 GB here). Its index cache keeps that index on disk per build id.
// `kmod core` turns it on (its help says so).
void use_index_cache(lldb::SBDebugger& dbg) {
    lldb::SBDebugger::SetInternalVariable("symbols.enable-lldb-index-cache", "true", dbg.GetInstanceName());
}

}  // namespace

std::string Session::default_vmlinux(const std::string& dump, bool kcore) {
    DumpOptions o;
    o.kcore = kcore;
    auto d = Dump::open(dump, o);
    auto rel = d->vmcoreinfo_value("OSRELEASE");
    if (!rel) throw Error("dump has no VMCOREINFO to name its kernel: pass --vmlinux VMLINUX (kernel.debug for a FreeBSD dump)");
    const std::string tries[] = {"/usr/lib/debug/boot/vmlinux-" + *rel, "/usr/lib/debug/lib/modules/" + *rel + "/vmlinux",
                                 "/boot/vmlinux-" + *rel, "/lib/modules/" + *rel + "/build/vmlinux"};
    std::error_code ec;
    for (const auto& t : tries)
        if (std::filesystem::exists(t, ec)) return t;
    throw Error("no vmlinux with debug info for kernel " + *rel + " (looked for " + tries[0] + " and " + tries[1] +
                "; on Debian: apt-get install linux-image-" + *rel + "-dbg): pass --vmlinux VMLINUX");
}

Session& Session::open_core(lldb::SBDebugger& dbg, lldb::SBTarget& target, const std::string& dump,
                            const std::string& vmlinux_arg, const OpenOptions& opts) {
    const bool has_target = has_kernel_target(target, "create a new target for another dump");
    std::string vmlinux = target_vmlinux(target, vmlinux_arg);
    if (vmlinux.empty()) vmlinux = default_vmlinux(dump, opts.kcore);
    const KernelOs os = detect_os(vmlinux);
    if (os == KernelOs::unknown)
        throw Error(vmlinux + " is neither a Linux kernel (no linux_banner) nor a FreeBSD kernel (no ostype \"FreeBSD\" and version)");
    if (opts.kcore && os != KernelOs::Linux) throw Error("/proc/kcore is Linux's: " + vmlinux + " is not a Linux vmlinux");

    use_index_cache(dbg);
    auto s = std::make_unique<Session>();
    s->dump_path_ = dump;
    lldb::SBModule kernel_module =
        os == KernelOs::FreeBSD
            ? s->open_freebsd(dbg, target, has_target, vmlinux, dump, opts)
            : s->open_system(dbg, target, has_target, vmlinux,
                             [&] { return LinuxSystem::open_dump(vmlinux, dump, opts); }, opts.progress);
    auto& sys = s->kernel_system();
    s->remote_target_ = std::make_unique<DumpTarget>(sys.dump(), sys.threads(), sys.slide());
    s->server_ = std::make_unique<GdbServer>(*s->remote_target_);
    int port = s->server_->start();

    if (opts.progress)
        opts.progress(std::string("connecting LLDB to the ") + (opts.kcore ? "kernel's " : "dump's ") +
                      std::to_string(sys.threads().size()) + " tasks");
    connect_lldb(dbg, target, port, "the dump server");
    // Every thread's registers stay known (the stop's jstopinfo).
    place_kernel(dbg, target, kernel_module, sys.slide());
    if (opts.kcore) {
        s->kcore_ = true;
        s->sync_live_modules(opts.progress);  // as a live stub's: modules come and go
    } else {
        s->load_modules(target, opts.progress);
    }
    return keep(std::move(s), target);
}

// Sets freebsd_ and target_ as open_system does for Linux, the dump read
// while LLDB reads the symbols. LLDB reads kernel.debug itself: FreeBSD's
// clang splits no function into hot and cold parts, so no copy is needed.
lldb::SBModule Session::open_freebsd(lldb::SBDebugger& dbg, lldb::SBTarget& target, bool has_target,
                                     const std::string& kernel, const std::string& dump, const OpenOptions& opts) {
    auto opening = std::async(std::launch::async, [&] {
        return FreebsdSystem::open_dump(kernel, dump, {opts.modules_dirs, opts.progress});
    });
    lldb::SBModule kernel_module;
    try {
        kernel_module = read_kernel_symbols(dbg, target, has_target, kernel, "x86_64-unknown-freebsd", opts.progress);
    } catch (...) {
        opening.wait();
        throw;
    }
    freebsd_ = opening.get();
    target_ = target;
    return kernel_module;
}

// True when the target has an executable (vmlinux); throws kq::Error when it
// already has a live process ("...: `refusal`").
bool Session::has_kernel_target(lldb::SBTarget& target, const char* refusal) {
    const bool has_target = target.IsValid() && target.GetExecutable().IsValid();
    if (has_target && target.GetProcess().IsValid() && target.GetProcess().GetState() != lldb::eStateDetached &&
        target.GetProcess().GetState() != lldb::eStateExited && target.GetProcess().GetState() != lldb::eStateInvalid)
        throw Error(std::string("the target already has a process: ") + refusal);
    return has_target;
}

// `vmlinux` if given, else the target's executable ("" without either).
std::string Session::target_vmlinux(lldb::SBTarget& target, const std::string& vmlinux) {
    if (!vmlinux.empty() || !target.IsValid() || !target.GetExecutable().IsValid()) return vmlinux;
    char path[4096];
    target.GetExecutable().GetPath(path, sizeof path);
    return path;
}

// Sets system_ from `open` and target_ to the target (made here when there
// is none): LLDB reads its symbols from the copy (once written) while the
// kernel and its layouts are read by `open`, on another thread. Returns the
// kernel's module, not yet in the target (see connect_lldb).
lldb::SBModule Session::open_system(lldb::SBDebugger& dbg, lldb::SBTarget& target, bool has_target,
                                    const std::string& vmlinux,
                                    const std::function<std::unique_ptr<LinuxSystem>()>& open,
                                    const std::function<void(const std::string&)>& say) {
    std::string copy = symbol_copy_path(vmlinux);
    std::future<std::unique_ptr<LinuxSystem>> opening;
    if (!copy.empty())
        opening = std::async(std::launch::async, open);
    else {
        system_ = open();
        copy = write_symbol_copy(vmlinux, say);
    }
    lldb::SBModule kernel_module;
    try {
        kernel_module = read_kernel_symbols(dbg, target, has_target, copy.empty() ? vmlinux : copy,
                                            "x86_64-unknown-linux-gnu", say);
    } catch (...) {
        if (opening.valid()) opening.wait();
        throw;
    }
    if (opening.valid()) system_ = opening.get();
    target_ = target;
    return kernel_module;
}

// Connects LLDB to `server` on `port` as `process connect` does in
// synchronous mode: the stop that ends the connection is printed into this
// command's result (dropped), not later by the debugger's event thread in
// the middle of the next command's output. The kernel's symbols are not in
// the target yet: LLDB looks functions up by name while it connects, which
// with vmlinux in the target builds its name index of all of vmlinux's DWARF
// (most of a cold start, and 1 GB).
void Session::connect_lldb(lldb::SBDebugger& dbg, lldb::SBTarget& target, int port, const std::string& server) {
    const std::string url = "connect://127.0.0.1:" + std::to_string(port);
    const bool was_async = dbg.GetAsync();
    dbg.SetAsync(false);
    lldb::SBCommandReturnObject ret;
    dbg.GetCommandInterpreter().HandleCommand(("process connect --plugin gdb-remote " + url).c_str(), ret);
    dbg.SetAsync(was_async);
    lldb::SBProcess proc = target.GetProcess();
    if (!ret.Succeeded() || !proc.IsValid())
        throw Error("LLDB could not connect to " + server + ": " + (ret.GetError() ? ret.GetError() : "?"));
    if (proc.GetState() != lldb::eStateStopped)
        throw Error("LLDB connected to " + server + " but the process did not stop (state " +
                    std::string(lldb::SBDebugger::StateAsCString(proc.GetState())) + ")");
}

// LLDB reads vmlinux from a copy whose split functions cover only their hot
// part (see symbols/split_function_ranges.h): without it LLDB's unwinder
// hangs on the first thread that passes through such a function. One copy
// per build id, with vmlinux's file name so LLDB names frames as it would.
// Returns its path if it is already written, else "".
std::string Session::symbol_copy_path(const std::string& vmlinux) {
    std::string id;
    try {
        id = ElfImage::open(vmlinux)->build_id();
    } catch (const Error&) {
        return {};  // open_dump says what is wrong with the file
    }
    if (id.empty()) return {};
    const std::string copy = cache_root(DumpOptions{}) + "/lldb-symbols/" + id + "/" +
                             std::filesystem::path(vmlinux).filename().string();
    std::error_code ec;
    return std::filesystem::exists(copy, ec) ? copy : std::string();
}

// Writes the copy (once per build id); "" if vmlinux needs none or it
// cannot be written.
std::string Session::write_symbol_copy(const std::string& vmlinux, const std::function<void(const std::string&)>& say) {
    const ElfImage& img = system_->vmlinux();
    if (img.build_id().empty() || split_functions(img).empty()) return {};
    const std::string dir = cache_root(DumpOptions{}) + "/lldb-symbols/" + img.build_id();
    const std::string copy = dir + "/" + std::filesystem::path(vmlinux).filename().string();
    if (say) say("writing a copy of " + vmlinux + " with split functions' ranges fixed for LLDB (once, into " + dir + ")");
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    return write_collapsed_copy(img, copy) ? copy : std::string();
}

// The kernel's module from `file` (the copy, or vmlinux itself), its symbol
// table read, not yet in the target: without a target a new, empty one is
// made and selected; a target's own vmlinux leaves the target (as a
// separate symbol file the copy would bring its own, unloaded, sections
// along) unless it is `file`.
lldb::SBModule Session::read_kernel_symbols(lldb::SBDebugger& dbg, lldb::SBTarget& target, bool has_target,
                                            const std::string& file, const char* triple,
                                            const std::function<void(const std::string&)>& say) {
    lldb::SBModule orig;
    if (!has_target) {
        lldb::SBError err;
        target = dbg.CreateTarget("", triple, nullptr, false, err);
        if (!target.IsValid())
            throw Error(std::string("LLDB could not create a target: ") + (err.GetCString() ? err.GetCString() : "?"));
        dbg.SetSelectedTarget(target);
    } else {
        orig = target.GetModuleAtIndex(0);
        char path[4096];
        orig.GetFileSpec().GetPath(path, sizeof path);
        if (file == path) return orig;
    }
    lldb::SBModuleSpec spec;
    spec.SetFileSpec(lldb::SBFileSpec(file.c_str()));
    lldb::SBModule m(spec);
    if (!m.IsValid()) {
        if (!has_target) throw Error("LLDB could not read " + file);
        if (say) say("LLDB could not load " + file + "; its unwinder may hang on split functions");
        return orig;
    }
    m.GetNumSymbols();
    if (has_target) target.RemoveModule(orig);
    return m;
}

void Session::refresh_kcore() {
    system_->reread({});
    unwinder_.reset();  // its modules are the last read's
    sync_live_modules(nullptr);
}

KernelSystem& Session::kernel_system() {
    if (freebsd_) return *freebsd_;
    return system();
}

LinuxSystem& Session::linux_system() {
    if (freebsd_) throw Error("needs a Linux kernel; the kernel open is FreeBSD " + freebsd_->release());
    return system();
}

const KernelSystem& Session::opened() const {
    if (freebsd_) return *freebsd_;
    return *system_;
}

const Module& Session::module(const std::string& name) const {
    if (const Module* m = opened().module(name)) return *m;
    std::string names;
    for (const auto& m : opened().modules()) names += (names.empty() ? "" : ", ") + m.name;
    throw Error("module " + name + " is not loaded; loaded: " + (names.empty() ? "none" : names));
}

KernelUnwinder& Session::unwinder() {
    if (!unwinder_) {
        if (freebsd_) unwinder_ = std::make_unique<FreebsdUnwinder>(freebsd_->kernel(), freebsd_->modules());
        else unwinder_ = std::make_unique<LinuxUnwinder>(system_->kernel(), system_->modules());
    }
    return *unwinder_;
}

void Session::load_modules(lldb::SBTarget& target, const std::function<void(const std::string&)>& say) {
    for (const auto& m : opened().modules()) {
        if (m.ko_path.empty()) continue;
        lldb::SBModule mod = target.AddModule(m.ko_path.c_str(), nullptr, nullptr);
        if (!mod.IsValid()) {
            if (say) say("LLDB could not load " + m.ko_path);
            continue;
        }
        if (place_ko(target, m, mod)) ++modules_loaded_;
    }
}

// A .ko's sections at the kernel's addresses of its module; false if none
// could be placed.
bool Session::place_ko(lldb::SBTarget& target, const Module& m, lldb::SBModule& mod) {
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
    return placed > 0;
}

void Session::enable_index_cache(lldb::SBDebugger& dbg) { use_index_cache(dbg); }

// vmlinux at its KASLR'd address, added once LLDB is connected (see open_core).
void Session::place_kernel(lldb::SBDebugger& dbg, lldb::SBTarget& target, lldb::SBModule& kernel, uint64_t slide) {
    NoPreload no_preload(dbg);
    target.AddModule(kernel);
    target.SetModuleLoadAddress(kernel, static_cast<int64_t>(slide));
}

// The target's session from now on (an earlier one of the target ends).
Session& Session::keep(std::unique_ptr<Session> s, lldb::SBTarget& target) {
    close(target);
    sessions().push_back(std::move(s));
    session_targets().push_back(target);
    return *sessions().back();
}

}  // namespace kq
