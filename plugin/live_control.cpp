#include "plugin/live_control.h"

#include "plugin/stack.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

extern char** environ;

namespace kq {

LiveTarget& live_kernel(Session& s, const std::string& command) {
    LiveTarget* live = s.live();
    if (!live && s.kcore())
        throw Error(command + " needs a kernel it can stop ('kmod attach HOST:PORT'); /proc/kcore only reads one");
    if (!live) throw Error(command + " needs a live kernel ('kmod attach HOST:PORT'); a dump cannot change");
    s.system();  // refuses while the kernel runs or after a detach
    return *live;
}

OwnBreakpoints::~OwnBreakpoints() {
    for (uint64_t a : std::set<uint64_t>(mine_)) remove(a);
}

void OwnBreakpoints::insert(uint64_t addr) {
    if (has(addr)) return;
    if (std::string r = t_.breakpoint(true, 0, addr, 1); r != "OK")
        throw Error("the GDB stub refused a breakpoint at " + hex_addr(addr) + ": " + r);
    mine_.insert(addr);
}

void OwnBreakpoints::remove(uint64_t addr) {
    if (!mine_.erase(addr)) return;
    t_.breakpoint(false, 0, addr, 1);
}

HostCommand::HostCommand(const std::string& command) : command_(command) {
    char path[] = "/tmp/kq-trigger-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) throw Error("cannot create a file for the trigger's output");
    out_path_ = path;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    posix_spawn_file_actions_addclose(&fa, fd);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);  // its own group: killed as a whole
    posix_spawnattr_setpgroup(&at, 0);
    const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
    const int rc = posix_spawn(&pid_, "/bin/sh", &fa, &at, const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(fd);
    if (rc != 0) throw Error("cannot run the trigger '" + command + "'");
}

HostCommand::~HostCommand() {
    if (!done_ && pid_ > 0) {
        kill(-pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    unlink(out_path_.c_str());
}

bool HostCommand::finished() {
    if (done_) return true;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) != pid_) return false;
    done_ = true;
    exit_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return true;
}

std::string HostCommand::output() const {
    std::ifstream f(out_path_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::set<std::string>& quiesced_modules(const Session& s) {
    static std::map<const Session*, std::set<std::string>> by_session;
    return by_session[&s];
}

std::function<bool(int64_t)> user_task(const LinuxSystem& sys) {
    std::map<int64_t, bool> user;
    for (const auto& t : sys.threads()) user[t.id] = !t.kernel_thread;
    return [user = std::move(user)](int64_t tid) {
        auto it = user.find(tid);
        return it != user.end() && it->second;
    };
}

void resync_lldb(lldb::SBTarget& target, LiveTarget& live) {
    live.resync_lldb();
    lldb::SBProcess p = target.GetProcess();
    if (p.IsValid()) p.Continue();
}

}  // namespace kq
