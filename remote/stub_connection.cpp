#include "remote/stub_connection.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "vmcore/memory_source.h"

namespace kq {
namespace {

using Clock = std::chrono::steady_clock;

bool is_stop_reply(std::string_view p) {
    return !p.empty() && (p[0] == 'T' || p[0] == 'S' || p[0] == 'W' || p[0] == 'X');
}

// "O" and hex digits: the target's console output (never "OK").
bool is_console_output(std::string_view p) {
    return p.size() > 1 && p[0] == 'O' && p.size() % 2 == 1 && rsp::from_hex(p.substr(1)).has_value();
}

int open_socket(const std::string& host, int port, std::string& why) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int e = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); e != 0) {
        why = "cannot resolve " + host + ": " + gai_strerror(e);
        return -1;
    }
    int fd = -1;
    for (addrinfo* a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        why = strerror(errno);
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        // Requests are small and answered at once: Nagle's delay would cost
        // 40 ms per packet.
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

}  // namespace

StubConnection::StubConnection(StubOptions opts) : opts_(std::move(opts)) {
    if (!opts_.log_path.empty()) {
        log_ = fopen(opts_.log_path.c_str(), "a");
        if (!log_) throw Error("cannot write the packet log " + opts_.log_path + ": " + strerror(errno));
        setvbuf(log_, nullptr, _IOLBF, 0);
    }
    std::string why;
    for (int i = 0; i < std::max(1, opts_.attempts); ++i) {
        if (i) std::this_thread::sleep_for(std::chrono::milliseconds(300 * i));
        if (connect_once(why)) return;
        if (fd_ >= 0) close(fd_);
        fd_ = -1;
    }
    if (log_) fclose(log_);
    throw Error("no GDB stub answers at " + opts_.host + ":" + std::to_string(opts_.port) + " (" +
                std::to_string(std::max(1, opts_.attempts)) + " attempts; last: " + why + ")");
}

StubConnection::~StubConnection() {
    if (fd_ >= 0) close(fd_);
    if (log_) fclose(log_);
}

bool StubConnection::connect_once(std::string& why) {
    dec_ = rsp::Decoder();
    no_ack_ = false;
    fd_ = open_socket(opts_.host, opts_.port, why);
    if (fd_ < 0) return false;
    log('#', "connected to " + opts_.host + ":" + std::to_string(opts_.port));
    try {
        features_ = request("qSupported:swbreak+;hwbreak+;vContSupported+");
        if (features_.empty()) {
            why = "the stub does not answer qSupported";
            return false;
        }
        if (auto at = features_.find("PacketSize="); at != std::string::npos) {
            std::string_view v = std::string_view(features_).substr(at + 11);
            auto size = rsp::parse_u64(v.substr(0, v.find(';')));
            // As GDB reads: PacketSize/2 bytes per 'm' (QEMU's own limit).
            if (size && *size >= 64) max_read_ = std::min<size_t>(*size / 2, 0x4000) & ~size_t(15);
        }
        if (request("QStartNoAckMode") == "OK") no_ack_ = true;
        return true;
    } catch (const Error& e) {
        why = e.what();
        return false;
    }
}

void StubConnection::log(char dir, std::string_view payload) {
    if (!log_) return;
    // Memory replies are long: their length says enough.
    if (dir == '<' && payload.size() > 96)
        fprintf(log_, "< %.64s... (%zu chars)\n", std::string(payload.substr(0, 64)).c_str(), payload.size());
    else
        fprintf(log_, "%c %.*s\n", dir, static_cast<int>(payload.size()), payload.data());
}

void StubConnection::send_packet(std::string_view payload) {
    log('>', payload);
    std::string f = rsp::frame(payload);
    for (size_t off = 0; off < f.size();) {
        ssize_t n = send(fd_, f.data() + off, f.size() - off, MSG_NOSIGNAL);
        if (n <= 0) throw Error("the GDB stub closed the connection");
        off += static_cast<size_t>(n);
    }
}

std::optional<std::string> StubConnection::read_packet(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    char buf[65536];
    bool polled = false;
    for (;;) {
        for (auto item = dec_.next(); item.kind != rsp::Decoder::Kind::none; item = dec_.next()) {
            using K = rsp::Decoder::Kind;
            if (item.kind == K::bad_checksum) {
                if (!no_ack_) send(fd_, "-", 1, MSG_NOSIGNAL);
                continue;
            }
            if (item.kind != K::packet) continue;  // acks
            if (!no_ack_) send(fd_, "+", 1, MSG_NOSIGNAL);
            log('<', item.payload);
            return std::move(item.payload);
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0 && polled) return std::nullopt;
        pollfd p{fd_, POLLIN, 0};
        int r = poll(&p, 1, static_cast<int>(std::max<long long>(left, 0)));
        polled = true;
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return std::nullopt;
        ssize_t n = recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) throw Error("the GDB stub closed the connection");
        dec_.feed(buf, static_cast<size_t>(n));
    }
}

std::string StubConnection::request(std::string_view packet, bool want_stop) {
    send_packet(packet);
    for (;;) {
        auto r = read_packet(opts_.reply_timeout);
        if (!r) throw Error("the GDB stub did not answer " + std::string(packet.substr(0, 24)) + " in time");
        if (!want_stop && is_stop_reply(*r)) continue;
        if (!want_stop && is_console_output(*r)) continue;
        return std::move(*r);
    }
}

std::vector<std::string> StubConnection::request_all(const std::vector<std::string>& packets) {
    // The socket buffers hold a few requests' worth; a window keeps both
    // directions moving without either side blocking.
    constexpr size_t kWindow = 16;
    std::vector<std::string> out;
    out.reserve(packets.size());
    size_t sent = 0;
    while (out.size() < packets.size()) {
        while (sent < packets.size() && sent - out.size() < kWindow) send_packet(packets[sent++]);
        auto r = read_packet(opts_.reply_timeout);
        if (!r) throw Error("the GDB stub did not answer " + packets[out.size()].substr(0, 24) + " in time");
        if (is_stop_reply(*r)) continue;
        out.push_back(std::move(*r));
    }
    return out;
}

void StubConnection::resume(std::string_view packet) { send_packet(packet); }

void StubConnection::interrupt() {
    log('>', "^C");
    send(fd_, "\x03", 1, MSG_NOSIGNAL);
}

std::optional<std::string> StubConnection::poll_stop(bool& closed) {
    closed = false;
    try {
        for (;;) {
            auto r = read_packet(std::chrono::milliseconds(0));
            if (!r) return std::nullopt;
            if (is_stop_reply(*r)) return r;
        }
    } catch (const Error&) {
        closed = true;
        return std::nullopt;
    }
}

}  // namespace kq
