// Session for a live kernel: `kmod attach` through the project's proxy
// (remote/live_target.h), and keeping what a command reads in step with a
// kernel that runs between commands.
#include <future>

#include "kernel/kernel_os.h"
#include "plugin/session.h"

namespace kq {

LinuxSystem& Session::system() {
    if (live_) {
        if (live_->detached())
            throw Error("no longer attached to the live kernel (detached, or its stub went away): 'kmod attach HOST:PORT' again");
        if (live_->running()) throw Error("the kernel is running: stop it first ('process interrupt')");
        if (live_->stop_count() != live_stop_seen_) {
            live_stop_seen_ = live_->stop_count();
            unwinder_.reset();  // its modules and per-CPU stacks are the last stop's
            sync_live_modules(nullptr);
        }
    }
    return *system_;
}

// LLDB's .ko files follow the live kernel's modules: those unloaded (or
// loaded again elsewhere) are removed, new ones placed.
void Session::sync_live_modules(const std::function<void(const std::string&)>& say) {
    std::map<std::string, const Module*> now;
    for (const auto& m : system_->modules())
        if (!m.ko_path.empty()) now[m.name] = &m;
    for (auto it = live_kos_.begin(); it != live_kos_.end();) {
        auto n = now.find(it->first);
        if (n != now.end() && n->second->addr == it->second.first) {
            now.erase(n);
            ++it;
            continue;
        }
        target_.RemoveModule(it->second.second);
        it = live_kos_.erase(it);
    }
    for (const auto& [name, m] : now) {
        lldb::SBModule mod = target_.AddModule(m->ko_path.c_str(), nullptr, nullptr);
        if (!mod.IsValid()) {
            if (say) say("LLDB could not load " + m->ko_path);
            continue;
        }
        if (place_ko(target_, *m, mod)) live_kos_[name] = {m->addr, mod};
    }
    modules_loaded_ = live_kos_.size();
}

Session& Session::open_live(lldb::SBDebugger& dbg, lldb::SBTarget& target, const std::string& host, int port,
                            const std::string& vmlinux_arg, const OpenOptions& opts, const std::string& proxy_log) {
    const bool has_target = has_kernel_target(target, "create a new target to attach");
    const std::string vmlinux = target_vmlinux(target, vmlinux_arg);
    if (vmlinux.empty())
        throw Error("which kernel runs there? pass --vmlinux VMLINUX (its vmlinux with debug info), or 'target create' it first");
    if (detect_os(vmlinux) != KernelOs::Linux)
        throw Error("kmod attach needs a Linux kernel: " + vmlinux + " is not a Linux vmlinux (live " +
                    "FreeBSD kernels are not supported yet)");
    auto say = [&](const std::string& line) {
        if (opts.progress) opts.progress(line);
    };

    enable_index_cache(dbg);
    auto s = std::make_unique<Session>();
    s->dump_path_ = host + ":" + std::to_string(port);
    say("connecting to the GDB stub at " + s->dump_path_ + " (the guest stops)");
    StubOptions so;
    so.host = host;
    so.port = port;
    so.log_path = proxy_log;
    auto live = std::make_unique<LiveTarget>(so);

    LiveTarget* lt = live.get();
    lldb::SBModule kernel_module = s->open_system(
        dbg, target, has_target, vmlinux,
        [&] { return LinuxSystem::open_live(vmlinux, lt->live_memory(), lt->vcpus(), opts); }, opts.progress);
    LinuxSystem* sys = s->system_.get();
    lt->set_image_slide(sys->kernel().slide());
    // At every stop the proxy reads the tasks anew; at this first one they
    // were just read.
    lt->set_tasks([sys, fresh = true](const std::vector<CpuState>& vcpus, std::vector<int>& cpu_of_vcpu) mutable
                  -> const std::vector<Thread>& {
        if (!fresh) sys->reread(vcpus);
        fresh = false;
        cpu_of_vcpu = sys->cpu_of_vcpus(vcpus);
        return sys->threads();
    });
    s->live_ = lt;
    s->remote_target_ = std::move(live);
    s->server_ = std::make_unique<GdbServer>(*s->remote_target_);
    const int lldb_port = s->server_->start();

    say("connecting LLDB to the kernel's " + std::to_string(sys->threads().size()) + " tasks");
    connect_lldb(dbg, target, lldb_port, "the proxy");

    // As open_core: vmlinux and the modules once connected.
    place_kernel(dbg, target, kernel_module, sys->kernel().slide());
    s->sync_live_modules(opts.progress);
    s->live_stop_seen_ = lt->stop_count();
    return keep(std::move(s), target);
}

}  // namespace kq
