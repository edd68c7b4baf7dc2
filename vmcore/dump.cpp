#include "vmcore/dump.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "vmcore/dump_probe.h"
#include "vmcore/file_util.h"
#include "vmcore/flattened.h"
#include "vmcore/freebsd_dump.h"
#include "vmcore/kcore.h"
#include "vmcore/kdump_file.h"

namespace kq {
namespace {

void note(const DumpOptions& opts, const std::string& line) {
    if (opts.note) opts.note(opts.note_ctx, line);
}

UniqueFd open_file(const std::string& path, const std::string& display) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd) throw Error("cannot open " + display + ": " + std::strerror(errno));
    return fd;
}

// The regular file a flattened dump describes, from the cache (unless
// `fresh`) or converted now. Returns its path; *converted says which.
std::string converted_copy(int fd, const std::string& path, const DumpOptions& opts, bool fresh,
                           bool* converted) {
    struct stat st;
    if (fstat(fd, &st) != 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
    const int64_t mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    const std::string out = converted_path(path, uint64_t(st.st_size), mtime_ns, opts);

    struct stat cached;
    *converted = false;
    if (!fresh && ::stat(out.c_str(), &cached) == 0 && S_ISREG(cached.st_mode) && cached.st_size > 0) return out;
    *converted = true;

    std::error_code ec;
    const auto dir = std::filesystem::path(out).parent_path();
    std::filesystem::create_directories(dir, ec);
    if (ec)
        throw Error("cannot convert flattened dump " + path + ": cannot create " + dir.string() + ": " +
                    ec.message());
    note(opts, "converting flattened dump " + path + " (" + human_size(uint64_t(st.st_size)) + ") into " +
                   out + " (once)");
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t total = uint64_t(st.st_size);
    const FlattenedStats s = convert_flattened(fd, path, out, [&](uint64_t done) {
        note(opts, "converting flattened dump: " + human_size(done) + " of " + human_size(total));
    });
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char line[160];
    snprintf(line, sizeof line, "converted %llu records, %s, in %.2f s",
             static_cast<unsigned long long>(s.records), human_size(s.output_size).c_str(), secs);
    note(opts, line);
    remove_stale_conversions(out);
    return out;
}

}  // namespace

std::unique_ptr<Dump> Dump::open(const std::string& path, const DumpOptions& opts) {
    if (path.empty()) throw Error("cannot open dump: no file name given");
    if (opts.kcore) return Kcore::open(path);
    UniqueFd fd = open_file(path, path);
    struct statfs fs;
    if (fstatfs(fd.get(), &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC && std::filesystem::path(path).filename() == "kcore")
        throw Error(path + " is the running kernel's memory, not a dump: 'kmod attach --kcore' reads it");
    if (auto freebsd = open_freebsd_dump(fd, path, opts)) return freebsd;
    DumpProbe probe = probe_dump_fd(fd.get(), path);

    if (probe.kind == DumpKind::Flattened) {
        for (bool fresh : {false, true}) {
            bool converted = false;
            const std::string copy = converted_copy(fd.get(), path, opts, fresh, &converted);
            try {
                UniqueFd cfd = open_file(copy, copy);
                DumpProbe inner = probe_dump_fd(cfd.get(), path);
                if (inner.kind == DumpKind::Flattened)
                    throw Error("corrupt dump: " + path + " (flattened stream holds another flattened stream)");
                const std::string fmt =
                    (inner.format.empty() ? std::string("dump") : inner.format) + " (converted from flattened)";
                return std::make_unique<KdumpFile>(std::move(cfd), inner, path, fmt, opts);
            } catch (const Error&) {
                // A cached copy that does not open (damaged since it was
                // written): convert again, once.
                if (converted) throw;
                note(opts, "converted copy " + copy + " does not open; converting again");
                ::unlink(copy.c_str());
            }
        }
        throw Error("cannot convert flattened dump " + path);  // not reached: a fresh copy opens or throws
    }
    std::string fmt = probe.format;
    return std::make_unique<KdumpFile>(std::move(fd), probe, path, fmt, opts);
}

std::optional<std::string> Dump::vmcoreinfo_value(std::string_view key) const {
    std::string_view text = vmcoreinfo();
    while (!text.empty()) {
        const size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const size_t eq = line.find('=');
        if (eq != std::string_view::npos && line.substr(0, eq) == key) return std::string(line.substr(eq + 1));
    }
    return std::nullopt;
}

}  // namespace kq
