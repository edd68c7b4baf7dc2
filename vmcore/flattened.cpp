#include "vmcore/flattened.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <system_error>
#include <vector>

#include "vmcore/dump_probe.h"
#include "vmcore/file_util.h"

namespace kq {
namespace {

constexpr uint64_t kHeaderSize = 4096;
constexpr size_t kInBuf = 8u << 20;
constexpr size_t kOutBuf = 8u << 20;
constexpr uint64_t kProgressEvery = 1ull << 30;
// Offsets beyond this (1 PiB) are not a dump of any real machine.
constexpr uint64_t kMaxOffset = 1ull << 50;

uint64_t be64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
    return v;
}

uint64_t fnv1a(const std::string& s, uint64_t h = 0xcbf29ce484222325ull) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

std::string hex(uint64_t v, int digits) {
    char buf[17];
    snprintf(buf, sizeof buf, "%0*llx", digits, static_cast<unsigned long long>(v));
    return buf;
}

// Sequential reader over the input with a large buffer.
class Reader {
public:
    Reader(int fd, uint64_t start) : fd_(fd), pos_(start), buf_(kInBuf) {}

    // Makes at least n (<= buffer size) bytes available; false at EOF.
    bool ensure(size_t n) {
        if (end_ - begin_ >= n) return true;
        std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
        while (end_ < n) {
            ssize_t r = ::pread(fd_, buf_.data() + end_, buf_.size() - end_, off_t(pos_));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) throw std::system_error(errno, std::generic_category());
            if (r == 0) return false;
            end_ += size_t(r);
            pos_ += uint64_t(r);
        }
        return true;
    }
    size_t available() const { return end_ - begin_; }
    const uint8_t* data() const { return buf_.data() + begin_; }
    void consume(size_t n) { begin_ += n; }
    uint64_t offset() const { return pos_ - available(); }  // input offset of data()

private:
    int fd_;
    uint64_t pos_;
    std::vector<uint8_t> buf_;
    size_t begin_ = 0, end_ = 0;
};

// Coalesces contiguous writes into large pwrite calls.
class Writer {
public:
    explicit Writer(int fd) : fd_(fd) { buf_.reserve(kOutBuf); }
    void write(uint64_t off, const uint8_t* p, size_t n) {
        if (!buf_.empty() && (off != at_ + buf_.size() || buf_.size() + n > kOutBuf)) flush();
        if (buf_.empty()) at_ = off;
        if (n >= kOutBuf) {
            if (!pwrite_full(fd_, p, n, off)) throw std::system_error(errno, std::generic_category());
            return;
        }
        buf_.insert(buf_.end(), p, p + n);
    }
    void flush() {
        if (buf_.empty()) return;
        if (!pwrite_full(fd_, buf_.data(), buf_.size(), at_))
            throw std::system_error(errno ? errno : EIO, std::generic_category());
        buf_.clear();
    }

private:
    int fd_;
    uint64_t at_ = 0;
    std::vector<uint8_t> buf_;
};

// Removes the temporary output unless committed.
struct TempFile {
    std::string path;
    UniqueFd fd;
    bool committed = false;
    ~TempFile() {
        fd.reset();
        if (!committed && !path.empty()) ::unlink(path.c_str());
    }
};

}  // namespace

FlattenedStats convert_flattened(int in_fd, const std::string& display, const std::string& out_path,
                                 const std::function<void(uint64_t)>& progress) {
    uint8_t hdr[32];
    if (pread_full(in_fd, hdr, sizeof hdr, 0) != sizeof hdr || std::memcmp(hdr, "makedumpfile", 12) != 0)
        throw Error("not a flattened dump: " + display);
    if (be64(hdr + 16) != 1 || be64(hdr + 24) != 1)
        throw Error("unsupported dump: " + display + " (flattened makedumpfile type " +
                    std::to_string(be64(hdr + 16)) + " version " + std::to_string(be64(hdr + 24)) + ")");

    TempFile tmp;
    std::random_device rd;
    tmp.path = out_path + ".tmp." + std::to_string(::getpid()) + "." + hex(rd(), 8);
    tmp.fd = UniqueFd(::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!tmp.fd) {
        int e = errno;
        tmp.path.clear();
        throw Error("cannot convert flattened dump " + display + ": cannot create " + out_path +
                    ".tmp: " + std::strerror(e));
    }

    FlattenedStats st;
    Reader in(in_fd, kHeaderSize);
    Writer out(tmp.fd.get());
    auto truncated = [&](bool inside) {
        return Error("truncated dump: " + display + " (flattened stream ends at " +
                     human_size(in.offset() + in.available()) + (inside ? " inside a record" : "") +
                     " without its end marker)");
    };
    uint64_t next_report = kProgressEvery;
    try {
        for (;;) {
            if (!in.ensure(16)) throw truncated(in.available() != 0);
            const uint64_t rec_at = in.offset();
            const int64_t off = int64_t(be64(in.data()));
            const int64_t size = int64_t(be64(in.data() + 8));
            in.consume(16);
            if (off == -1 && size == -1) break;
            if (off < 0 || size < 0 || uint64_t(off) > kMaxOffset || uint64_t(size) > kMaxOffset - uint64_t(off))
                throw Error("corrupt dump: " + display + " (flattened record at byte " + std::to_string(rec_at) +
                            " has offset " + std::to_string(off) + " and size " + std::to_string(size) + ")");
            ++st.records;
            uint64_t at = uint64_t(off), left = uint64_t(size);
            while (left) {
                if (!in.available() && !in.ensure(1)) throw truncated(true);
                size_t n = size_t(std::min<uint64_t>(left, in.available()));
                out.write(at, in.data(), n);
                in.consume(n);
                at += n;
                left -= n;
            }
            st.data_bytes += uint64_t(size);
            if (progress && in.offset() >= next_report) {
                progress(in.offset());
                next_report = in.offset() + kProgressEvery;
            }
            st.output_size = std::max(st.output_size, uint64_t(off) + uint64_t(size));
        }
        out.flush();
        // Regions no record wrote stay holes (zeros), as in the original.
        if (::ftruncate(tmp.fd.get(), off_t(st.output_size)) != 0)
            throw std::system_error(errno, std::generic_category());
    } catch (const std::system_error& e) {
        throw Error("cannot convert flattened dump " + display + " into " + out_path + ": " +
                    std::strerror(e.code().value()));
    }
    if (::close(tmp.fd.release()) != 0)
        throw Error("cannot convert flattened dump " + display + " into " + out_path + ": " +
                    std::strerror(errno));
    if (::rename(tmp.path.c_str(), out_path.c_str()) != 0)
        throw Error("cannot convert flattened dump " + display + ": cannot rename into " + out_path + ": " +
                    std::strerror(errno));
    tmp.committed = true;
    return st;
}

std::string cache_root(const DumpOptions& opts) {
    if (!opts.cache_dir.empty()) return opts.cache_dir;
    if (const char* c = std::getenv("KQ_CACHE"); c && *c) return c;
    const char* home = std::getenv("HOME");
    if (!home || !*home) {
        if (const passwd* pw = getpwuid(getuid())) home = pw->pw_dir;
    }
    return std::string(home && *home ? home : "/tmp") + "/.cache/kquiesce";
}

std::string converted_path(const std::string& path, uint64_t size, int64_t mtime_ns, const DumpOptions& opts) {
    std::error_code ec;
    std::filesystem::path abs = std::filesystem::absolute(path, ec);
    std::string key = ec ? path : abs.lexically_normal().string();
    std::string base = std::filesystem::path(key).filename().string();
    if (base.empty()) base = "dump";
    const uint64_t path_hash = fnv1a(key);
    const uint64_t state_hash = fnv1a(std::to_string(size) + '/' + std::to_string(mtime_ns), path_hash);
    return cache_root(opts) + "/converted/" + base + "." + hex(path_hash >> 32, 8) + "-" +
           hex(state_hash >> 32, 8) + ".dump";
}

void remove_stale_conversions(const std::string& current) {
    namespace fs = std::filesystem;
    const fs::path cur(current);
    const std::string name = cur.filename().string();
    const size_t dash = name.rfind('-');
    if (dash == std::string::npos) return;
    const std::string prefix = name.substr(0, dash + 1);  // <base>.<path hash>-
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(cur.parent_path(), ec)) {
        const std::string n = e.path().filename().string();
        if (n != name && n.size() == name.size() && n.compare(0, prefix.size(), prefix) == 0 &&
            n.ends_with(".dump"))
            fs::remove(e.path(), ec);
    }
}

}  // namespace kq
