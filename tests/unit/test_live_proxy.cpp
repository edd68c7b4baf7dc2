// The live proxy against an in-process stub that behaves like QEMU's: an
// unasked stop reply at connect, multiprocess-less thread ids, 'E14' for
// unmapped pages, stop replies only after a resume.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>

#include "remote/gdb_server.h"
#include "remote/live_target.h"
#include "remote/rsp.h"

namespace {

using namespace std::chrono_literals;

constexpr uint64_t kMapped = 0x10000, kMappedEnd = 0x13000;

class FakeStub {
public:
    explicit FakeStub(bool silent = false) : silent_(silent) {
        lfd_ = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        listen(lfd_, 4);
        getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeStub() {
        stop_ = true;
        shutdown(lfd_, SHUT_RDWR);
        if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
        thread_.join();
        close(lfd_);
    }
    int port() const { return port_; }
    std::vector<std::string> received() {
        std::lock_guard g(mu_);
        return got_;
    }
    size_t count(char first) {
        size_t n = 0;
        for (const auto& p : received()) n += !p.empty() && p[0] == first;
        return n;
    }

private:
    void send_packet(const std::string& p) {
        std::string f = kq::rsp::frame(p);
        (void)!write(fd_, f.data(), f.size());
    }
    std::string regs(int vcpu) {
        uint64_t gpr[17] = {};
        gpr[16] = 0xffffffff81000000ull + vcpu;  // rip
        std::string r = kq::rsp::to_hex(gpr, sizeof gpr);
        uint32_t small[7] = {0x246, 0x10, 0x18, 0, 0, 0, 0};
        r += kq::rsp::to_hex(small, sizeof small);
        uint64_t bases[2] = {0, 0xffff888000000000ull + 0x100000ull * vcpu};
        return r + kq::rsp::to_hex(bases, sizeof bases);
    }
    std::string answer(const std::string& p) {
        if (p.rfind("qSupported", 0) == 0) return "PacketSize=1000;vContSupported+";
        if (p == "qfThreadInfo") return "m1,2";
        if (p == "qsThreadInfo") return "l";
        if (p == "?") return "T05thread:01;";
        if (p.rfind("Hg", 0) == 0) {
            hg_ = std::stoi(p.substr(2), nullptr, 16);
            return "OK";
        }
        if (p == "g") return regs(hg_);
        if (p[0] == 'm') {
            uint64_t a = std::stoull(p.substr(1), nullptr, 16);
            size_t n = std::stoull(p.substr(p.find(',') + 1), nullptr, 16);
            if (n > 0x800) return "E22";
            if (a < kMapped || a + n > kMappedEnd) return "E14";
            std::string b(n, '\0');
            for (size_t i = 0; i < n; ++i) b[i] = static_cast<char>((a + i) & 0xff);
            return kq::rsp::to_hex(b);
        }
        if (p[0] == 'Z' || p[0] == 'z' || p[0] == 'M' || p[0] == 'D') return "OK";
        if (p == "vCont;c") {
            resumed_at_ = std::chrono::steady_clock::now();
            return {};  // the stop comes later
        }
        if (p.rfind("vCont;s:", 0) == 0) return "T05thread:" + p.substr(8, p.find(';', 6) - 8) + ";";
        return "";
    }
    void serve() {
        fd_ = accept(lfd_, nullptr, nullptr);
        if (fd_ < 0) return;
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!silent_) send_packet("T02thread:01;");  // QEMU: the stop a connection causes
        kq::rsp::Decoder dec;
        char buf[4096];
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 20) > 0) {
                ssize_t n = read(fd_, buf, sizeof buf);
                if (n <= 0) break;
                dec.feed(buf, static_cast<size_t>(n));
            }
            if (resumed_at_ && std::chrono::steady_clock::now() - *resumed_at_ > 50ms) {
                resumed_at_.reset();
                send_packet("T05thread:02;");  // vCPU 2 hit something
            }
            for (auto it = dec.next(); it.kind != kq::rsp::Decoder::Kind::none; it = dec.next()) {
                if (silent_) continue;
                if (it.kind == kq::rsp::Decoder::Kind::interrupt) {
                    resumed_at_.reset();
                    send_packet("T02thread:01;");
                    continue;
                }
                if (it.kind != kq::rsp::Decoder::Kind::packet) continue;
                {
                    std::lock_guard g(mu_);
                    got_.push_back(it.payload);
                }
                (void)!write(fd_, "+", 1);
                std::string r = answer(it.payload);
                if (!r.empty() || it.payload != "vCont;c") send_packet(r);
            }
        }
        close(fd_);
    }

    bool silent_;
    int lfd_ = -1, fd_ = -1, port_ = 0, hg_ = 1;
    std::atomic<bool> stop_{false};
    std::optional<std::chrono::steady_clock::time_point> resumed_at_;
    std::mutex mu_;
    std::vector<std::string> got_;
    std::thread thread_;
};

kq::StubOptions options(int port) {
    kq::StubOptions o;
    o.port = port;
    o.attempts = 2;
    o.reply_timeout = 300ms;
    return o;
}

// Two tasks on the two CPUs and one asleep.
std::vector<kq::Thread> tasks() {
    std::vector<kq::Thread> t(3);
    t[0].id = 100, t[0].name = "on0", t[0].on_cpu = true, t[0].cpu = 0, t[0].state = "R";
    t[1].id = 200, t[1].name = "on1", t[1].on_cpu = true, t[1].cpu = 1, t[1].state = "R";
    t[2].id = 300, t[2].name = "sleeper", t[2].cpu = 1, t[2].state = "S";
    t[2].regs.set(kq::Reg::rip, 0xffffffff81001000ull);
    return t;
}

void attach_tasks(kq::LiveTarget& t) {
    static std::vector<kq::Thread> ts;
    t.set_tasks([](const std::vector<kq::CpuState>& vcpus, std::vector<int>& cpu) -> const std::vector<kq::Thread>& {
        ts = tasks();
        cpu = {0, 1};
        ts[0].regs = vcpus[0].regs;
        ts[1].regs = vcpus[1].regs;
        return ts;
    });
}

}  // namespace

TEST(LiveProxy, ConnectsPastTheUnaskedStopAndReadsVcpus) {
    FakeStub stub;
    kq::LiveTarget t(options(stub.port()));
    ASSERT_EQ(t.vcpus().size(), 2u);
    EXPECT_EQ(t.vcpus()[1].regs.get(kq::Reg::rip), 0xffffffff81000002ull);
    EXPECT_EQ(t.vcpus()[1].regs.get(kq::Reg::gs_base), 0xffff888000200000ull);
    EXPECT_EQ(t.vcpus()[0].regs.get(kq::Reg::eflags), 0x246u);
}

TEST(LiveProxy, PagesAreReadInBatchesCachedAndShortAtAHole) {
    FakeStub stub;
    kq::LiveTarget t(options(stub.port()));
    kq::MemorySource& m = t.memory();
    uint8_t b[0x20];
    ASSERT_EQ(m.read(0x10ff0, b, sizeof b), sizeof b);  // across a page boundary
    for (size_t i = 0; i < sizeof b; ++i) EXPECT_EQ(b[i], (0x10ff0 + i) & 0xff);
    const size_t reads = stub.count('m');
    EXPECT_EQ(reads, 4u);  // two pages, two 2 KiB packets each
    EXPECT_EQ(m.read(0x11000, b, 8), 8u);
    EXPECT_EQ(stub.count('m'), reads);  // cached
    EXPECT_EQ(m.read(0x12ff0, b, sizeof b), 0x10u);  // the next page is unmapped
    EXPECT_EQ(m.read(0x50000, b, 8), 0u);
}

TEST(LiveProxy, BulkReadsUseTheCacheButDoNotFillIt) {
    FakeStub stub;
    kq::LiveTarget t(options(stub.port()));
    kq::MemorySource& m = t.memory();
    uint8_t b[8];
    ASSERT_EQ(m.read(0x11000, b, sizeof b), sizeof b);  // one page cached
    std::vector<uint8_t> all(kMappedEnd - kMapped + 0x1000);
    size_t reads = stub.count('m');
    ASSERT_EQ(m.read_bulk(kMapped + 8, all.data(), all.size() - 8), kMappedEnd - kMapped - 8);  // short at the hole
    for (size_t i = 0; i + 8 < kMappedEnd - kMapped; ++i) ASSERT_EQ(all[i], (kMapped + 8 + i) & 0xff) << i;
    EXPECT_EQ(stub.count('m') - reads, 6u);  // pages 0x10000, 0x12000 and the hole, not the cached one
    reads = stub.count('m');
    ASSERT_EQ(m.read(0x10000, b, sizeof b), sizeof b);
    EXPECT_EQ(stub.count('m') - reads, 2u);  // read anew: the bulk read kept nothing
}

TEST(LiveProxy, BreakpointsAndRefusedWrites) {
    FakeStub stub;
    kq::LiveTarget t(options(stub.port()));
    attach_tasks(t);
    // "OK" is an answer, not console output.
    EXPECT_EQ(t.breakpoint(true, 0, 0xffffffff81000100ull, 1), "OK");
    EXPECT_EQ(t.write_memory(0x10000, "ab"), "E0e");
    EXPECT_EQ(stub.count('M'), 0u);
    {
        kq::LiveTarget::WriteGrant g(t);
        EXPECT_EQ(t.write_memory(0x10000, "ab"), "OK");
    }
    EXPECT_EQ(stub.count('M'), 1u);
    EXPECT_EQ(t.write_memory(0x10000, "ab"), "E0e");
}

TEST(LiveProxy, ResumeStopAndStep) {
    FakeStub stub;
    kq::LiveTarget t(options(stub.port()));
    attach_tasks(t);
    ASSERT_EQ(t.threads().size(), 3u);
    ASSERT_EQ(t.resume({{'c', -1}}), "");
    EXPECT_TRUE(t.running());
    uint8_t b[8];
    EXPECT_EQ(t.memory().read(0x10000, b, 8), 0u);  // nothing is read while running
    kq::RunState st = kq::RunState::running;
    for (int i = 0; i < 200 && st == kq::RunState::running; ++i) {
        std::this_thread::sleep_for(10ms);
        st = t.poll_stop();
    }
    ASSERT_EQ(st, kq::RunState::stopped);
    EXPECT_FALSE(t.running());
    EXPECT_EQ(t.stop_thread(), 200);  // the task on vCPU 2's CPU
    EXPECT_EQ(t.stop_count(), 1u);
    EXPECT_EQ(t.memory().read(0x10000, b, 8), 8u);

    EXPECT_EQ(t.resume({{'s', 100}}), "");
    for (int i = 0; i < 200 && t.poll_stop() == kq::RunState::running; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_FALSE(t.running());
    EXPECT_EQ(t.stop_thread(), 100);
    const auto got = stub.received();
    EXPECT_NE(std::find(got.begin(), got.end(), "vCont;s:1"), got.end());
    EXPECT_EQ(t.resume({{'s', 300}}), "E01");  // asleep: no vCPU can step it
    t.detach();
    EXPECT_EQ(stub.received().back(), "D");
}

TEST(LiveProxy, ServerForwardsResumeAndInterrupt) {
    FakeStub stub;
    kq::LiveTarget t(options(stub.port()));
    attach_tasks(t);
    kq::GdbServer server(t);
    const int port = server.start();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    kq::rsp::Decoder dec;
    auto exchange = [&](const std::string& raw) {
        (void)!write(fd, raw.data(), raw.size());
        char buf[65536];
        for (;;) {
            for (auto it = dec.next(); it.kind != kq::rsp::Decoder::Kind::none; it = dec.next())
                if (it.kind == kq::rsp::Decoder::Kind::packet) return it.payload;
            pollfd p{fd, POLLIN, 0};
            if (poll(&p, 1, 3000) <= 0) return std::string("<timeout>");
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0) return std::string("<closed>");
            dec.feed(buf, static_cast<size_t>(n));
        }
    };
    EXPECT_EQ(exchange(kq::rsp::frame("QStartNoAckMode")), "OK");
    EXPECT_EQ(exchange(kq::rsp::frame("vCont?")), "vCont;c;C;s;S");
    EXPECT_EQ(exchange(kq::rsp::frame("Z0,ffffffff81000100,1")), "OK");
    EXPECT_EQ(exchange(kq::rsp::frame("M10000,2:6162")), "E0e");
    std::string stop = exchange(kq::rsp::frame("vCont;c"));
    EXPECT_EQ(stop.rfind("T05thread:c8;", 0), 0u) << stop;  // task 200
    // Resumed again, then interrupted before the stub stops on its own.
    (void)!write(fd, kq::rsp::frame("c").data(), kq::rsp::frame("c").size());
    std::this_thread::sleep_for(5ms);
    stop = exchange("\x03");
    EXPECT_EQ(stop.rfind("T02thread:64;", 0), 0u) << stop;  // SIGINT, task 100 on vCPU 1
    EXPECT_EQ(exchange(kq::rsp::frame("k")), "OK");  // a kill detaches
    close(fd);
    server.stop();
    EXPECT_EQ(stub.count('D'), 1u);
    EXPECT_EQ(stub.count('M'), 0u);
}

TEST(LiveProxy, SilentStubIsAnErrorNotAHang) {
    FakeStub stub(true);
    auto t0 = std::chrono::steady_clock::now();
    try {
        kq::LiveTarget t(options(stub.port()));
        FAIL() << "connected to a stub that never answers";
    } catch (const kq::Error& e) {
        EXPECT_NE(std::string(e.what()).find("no GDB stub answers"), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}
