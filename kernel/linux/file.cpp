// Provider "open files": every open file of every task, with the operations
// table the kernel calls for it.
//
// task_struct.files -> files_struct.fdt -> fdtable {max_fds, fd}: fd[i] is
// the struct file of descriptor i (NULL when closed). The threads of a process
// (and the kernel threads sharing init_files) share one files_struct: each is
// read once, and its files name all the tasks sharing it. For each file the
// path is rebuilt from f_path (dentry names up to the mount's root, then the
// mount point in the parent mount, at most kMaxDepth components); a file of a
// pseudo filesystem (pipe, socket, anon inode) gets its dentry's name only.
//
// Reported: one open_file reference per descriptor, the file as object and
// its f_op as data (an operations table in a module makes the file a path into
// the module).
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "kernel/linux/providers.h"

namespace kq {
namespace {

constexpr uint32_t kMaxFds = 1u << 20;  // sysctl fs.nr_open's ceiling
constexpr int kMaxDepth = 32;

struct FileLayout {
    uint64_t task_files, fdt, max_fds, fd;
    uint64_t f_op, f_dentry, f_mnt;
    uint64_t d_name, d_parent, d_sb, s_type, fs_name;
    uint64_t mount_mnt, mnt_parent, mnt_mountpoint, mnt_root;

    explicit FileLayout(const LinuxKernel& k) {
        task_files = k.off("task_struct", "files");
        fdt = k.off("files_struct", "fdt");
        max_fds = k.off("fdtable", "max_fds");
        fd = k.off("fdtable", "fd");
        f_op = k.off("file", "f_op");
        f_dentry = k.off("file", "f_path.dentry");
        f_mnt = k.off("file", "f_path.mnt");
        d_name = k.off("dentry", "d_name.name");
        d_parent = k.off("dentry", "d_parent");
        d_sb = k.off("dentry", "d_sb");
        s_type = k.off("super_block", "s_type");
        fs_name = k.off("file_system_type", "name");
        mount_mnt = k.off("mount", "mnt");
        mnt_parent = k.off("mount", "mnt_parent");
        mnt_mountpoint = k.off("mount", "mnt_mountpoint");
        mnt_root = k.off("vfsmount", "mnt_root");
    }
};

class Reader {
public:
    Reader(const SurveyContext& ctx, Survey& out) : ctx_(ctx), mem_(ctx.kernel.mem()), L_(ctx.kernel), out_(out) {}

    void run() {
        // files_struct -> the tasks sharing it, in thread order.
        std::map<uint64_t, std::vector<const Thread*>> tables;
        for (const auto& t : ctx_.threads) {
            auto files = mem_.read_u64(t.task + L_.task_files);
            if (!files) problems_.push_back("task " + std::to_string(t.id) + ": unreadable files pointer");
            else if (*files) tables[*files].push_back(&t);
        }
        for (auto& [files, tasks] : tables) table(files, tasks);
        Coverage c{"open files", "", true, ""};
        c.covered = std::to_string(tables.size()) + " file tables of " + std::to_string(ctx_.threads.size()) +
                    " tasks, " + std::to_string(files_) + " open files";
        if (!problems_.empty()) {
            c.complete = false;
            for (size_t i = 0; i < problems_.size() && i < 8; ++i) c.gap += (i ? "; " : "") + problems_[i];
            if (problems_.size() > 8) c.gap += "; and " + std::to_string(problems_.size() - 8) + " more";
        }
        out_.coverage.push_back(std::move(c));
    }

private:
    void table(uint64_t files, const std::vector<const Thread*>& tasks) {
        const Thread& first = **std::min_element(tasks.begin(), tasks.end(),
                                                 [](const Thread* a, const Thread* b) { return a->id < b->id; });
        std::string who = task_label(first);
        auto fdt = mem_.read_u64(files + L_.fdt);
        auto max = fdt ? mem_.read_as<uint32_t>(*fdt + L_.max_fds) : std::nullopt;
        auto fd = fdt ? mem_.read_u64(*fdt + L_.fd) : std::nullopt;
        if (!max || !fd) {
            problems_.push_back(who + ": unreadable file table");
            return;
        }
        if (*max > kMaxFds) {
            problems_.push_back(who + ": implausible max_fds " + std::to_string(*max));
            return;
        }
        std::vector<uint64_t> fds(*max);
        if (!mem_.read_exact(*fd, fds.data(), fds.size() * 8)) {
            problems_.push_back(who + ": unreadable descriptor array");
            return;
        }
        std::vector<int64_t> ids;
        for (const Thread* t : tasks) ids.push_back(t->id);
        for (uint32_t i = 0; i < *max; ++i) {
            if (!fds[i]) continue;
            auto op = mem_.read_u64(fds[i] + L_.f_op);
            if (!op) {
                problems_.push_back(who + " fd " + std::to_string(i) + ": unreadable struct file");
                continue;
            }
            KernelRef r;
            r.kind = RefKind::open_file;
            r.object = fds[i];
            r.data = *op;
            r.subject = who + " fd " + std::to_string(i);
            r.detail = path(fds[i]);
            r.tasks = ids;
            out_.refs.push_back(std::move(r));
            ++files_;
        }
    }

    std::string name(uint64_t dentry) {
        auto n = mem_.read_u64(dentry + L_.d_name);
        return n ? mem_.read_cstr(*n, 256) : "?";
    }

    // A file of a pseudo filesystem: "pipefs:", "anon_inodefs:[eventpoll]" ...
    std::string pseudo(uint64_t dentry) {
        auto sb = mem_.read_u64(dentry + L_.d_sb);
        auto type = sb ? mem_.read_u64(*sb + L_.s_type) : std::nullopt;
        auto fs = type ? mem_.read_u64(*type + L_.fs_name) : std::nullopt;
        return (fs ? mem_.read_cstr(*fs, 64) : "?") + ":" + name(dentry);
    }

    // d_path without locks: "" when even the dentry cannot be read; "..."
    // first when deeper than kMaxDepth.
    std::string path(uint64_t file) {
        auto dentry = mem_.read_u64(file + L_.f_dentry), vfsmnt = mem_.read_u64(file + L_.f_mnt);
        if (!dentry || !*dentry || !vfsmnt || !*vfsmnt) return "";
        uint64_t d = *dentry, mnt = *vfsmnt - L_.mount_mnt;
        std::vector<std::string> parts;
        bool whole = false;
        for (int depth = 0; depth < kMaxDepth && !whole; ++depth) {
            auto root = mem_.read_u64(mnt + L_.mount_mnt + L_.mnt_root);
            if (!root) return name(*dentry);
            if (d == *root) {
                auto parent = mem_.read_u64(mnt + L_.mnt_parent), point = mem_.read_u64(mnt + L_.mnt_mountpoint);
                whole = !parent || !point || *parent == mnt || !*parent;  // the root of the tree
                d = point.value_or(0), mnt = parent.value_or(0);
                continue;
            }
            auto up = mem_.read_u64(d + L_.d_parent);
            if (!up) return name(*dentry);
            if (*up == d) return pseudo(*dentry);  // not under any mount's root
            parts.push_back(name(d));
            d = *up;
        }
        std::string p = whole ? "" : "...";
        for (auto it = parts.rbegin(); it != parts.rend(); ++it) p += "/" + *it;
        return p.empty() ? "/" : p;
    }

    const SurveyContext& ctx_;
    MemorySource& mem_;
    FileLayout L_;
    Survey& out_;
    size_t files_ = 0;
    std::vector<std::string> problems_;
};

}  // namespace

void survey_open_files(const SurveyContext& ctx, Survey& out) { Reader(ctx, out).run(); }

}  // namespace kq
