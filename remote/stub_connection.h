// The client side of a GDB-remote connection to a live stub (QEMU/KVM
// -gdb, later kgdb): connecting with retries, one request at a time or
// several in flight, resuming and waiting for the stop reply.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "remote/rsp.h"

namespace kq {

struct StubOptions {
    std::string host = "127.0.0.1";
    int port = 0;
    int attempts = 5;                              // connections tried before giving up
    std::chrono::milliseconds reply_timeout{5000};  // per request while stopped
    std::string log_path;                          // every packet to and from the stub, one a line
};

class StubConnection {
public:
    // Connects and completes the handshake (qSupported). QEMU stops the
    // guest when a client connects and reports that stop unasked, before
    // any request (the reply LLDB takes for its handshake's and gives up
    // on): such stop replies are skipped here. A connection that does not
    // answer in time is closed and tried again. Throws kq::Error.
    explicit StubConnection(StubOptions opts);
    ~StubConnection();
    StubConnection(const StubConnection&) = delete;
    StubConnection& operator=(const StubConnection&) = delete;

    // One request and its reply payload. Stop replies that arrive while
    // stopped (late or repeated ones) are skipped unless `want_stop`.
    // Throws kq::Error on a timeout or a closed connection.
    std::string request(std::string_view packet, bool want_stop = false);
    // Several requests in flight at once (the stub answers in order): the
    // replies, in the requests' order.
    std::vector<std::string> request_all(const std::vector<std::string>& packets);

    // Sends a resume packet (vCont, c, s); its reply is the next stop.
    void resume(std::string_view packet);
    void interrupt();  // ^C: the stub stops the target and replies with a stop
    // While resumed: a stop reply if one has arrived (never blocks); sets
    // `closed` if the stub went away.
    std::optional<std::string> poll_stop(bool& closed);
    int fd() const { return fd_; }
    size_t max_read() const { return max_read_; }  // bytes one 'm' packet may ask for
    const std::string& features() const { return features_; }  // the stub's qSupported reply

    // Serializes users: LLDB's server thread and a command's thread.
    std::mutex& lock() { return mu_; }

private:
    bool connect_once(std::string& why);
    void send_packet(std::string_view payload);
    // The next packet payload from the stub; nullopt on timeout.
    std::optional<std::string> read_packet(std::chrono::milliseconds timeout);
    void log(char dir, std::string_view payload);

    StubOptions opts_;
    int fd_ = -1;
    bool no_ack_ = false;
    size_t max_read_ = 0x800;
    std::string features_;
    rsp::Decoder dec_;
    std::mutex mu_;
    FILE* log_ = nullptr;
};

}  // namespace kq
