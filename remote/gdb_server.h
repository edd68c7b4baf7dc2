// A GDB-remote server over a RemoteTarget, for LLDB's gdb-remote plugin.
// It listens on a loopback port and serves one connection on its own thread.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "remote/remote_target.h"
#include "remote/rsp.h"

namespace kq {

class GdbServer {
public:
    explicit GdbServer(RemoteTarget& target) : target_(target) {}
    ~GdbServer();
    GdbServer(const GdbServer&) = delete;
    GdbServer& operator=(const GdbServer&) = delete;

    // Binds 127.0.0.1 on a free port and starts serving in the background.
    // Returns the port; throws kq::Error on failure.
    int start();
    void stop();

    // One request's reply payload (without framing); exposed for tests.
    // close is set when the client asked to end the connection.
    std::string handle(std::string_view packet, bool& close);

    // Packets received, for tests and `log`: "m", "p", "g", "M", "X", "Z"...
    uint64_t packets_served() const { return served_; }

private:
    void serve();
    std::string stop_reply(int64_t tid, bool with_thread_list);
    std::string stop_reason_fields(const RemoteThread& t);
    std::optional<std::vector<ResumeAction>> resume_actions(std::string_view packet) const;
    std::string run(const std::vector<ResumeAction>& actions, int fd, rsp::Decoder& dec,
                    const std::function<bool(const std::string&)>& send_all);
    std::string threads_json();
    const RemoteThread* thread(int64_t tid);
    std::string read_register(const RemoteThread& t, unsigned regno);
    int64_t thread_suffix(std::string_view packet);

    RemoteTarget& target_;
    int listen_fd_ = -1;
    std::atomic<int> conn_fd_{-1};
    std::atomic<bool> stopping_{false};
    std::thread thread_;
    int64_t current_ = 0;        // Hg thread
    int64_t resume_thread_ = 0;  // Hc thread
    bool no_ack_ = false;
    std::atomic<uint64_t> served_{0};
};

}  // namespace kq
