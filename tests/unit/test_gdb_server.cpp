#include <gtest/gtest.h>

#include "memory_fixture.h"
#include "remote/gdb_server.h"
#include "remote/rsp.h"

namespace {

class FakeTarget : public kq::RemoteTarget {
public:
    FakeTarget() {
        kq::RemoteThread a{5, "kq_sleep", "S (sleeping), last ran on CPU 1", {}};
        a.regs.set(kq::Reg::rip, 0xffffffffc0001234ull);
        a.regs.set(kq::Reg::rsp, 0xffffc90000013e00ull);
        kq::RemoteThread b{(1ll << 30) + 1, "swapper/1", "R (running), on CPU 1", {}};
        b.regs.set(kq::Reg::rip, 0xffffffff81000010ull);
        threads_ = {a, b};
        uint8_t bytes[] = {0xde, 0xad, 0xbe, 0xef};
        mem_.put(0xffffffff82000000ull, bytes, 4);
    }
    const std::vector<kq::RemoteThread>& threads() override { return threads_; }
    kq::MemorySource& memory() override { return mem_; }
    int64_t stop_thread() override { return 5; }
    uint64_t image_slide() override { return 0x1e000000; }

private:
    std::vector<kq::RemoteThread> threads_;
    kq::test::FixtureMemory mem_;
};

}  // namespace

TEST(Rsp, FrameAndDecodeRoundTrip) {
    std::string f = kq::rsp::frame("m1000,4");
    EXPECT_EQ(f, "$m1000,4#8e");
    kq::rsp::Decoder d;
    d.feed("+", 1);
    d.feed(f.data(), f.size() - 1);  // split across reads
    EXPECT_EQ(d.next().kind, kq::rsp::Decoder::Kind::ack);
    EXPECT_EQ(d.next().kind, kq::rsp::Decoder::Kind::none);
    d.feed(f.data() + f.size() - 1, 1);
    auto it = d.next();
    EXPECT_EQ(it.kind, kq::rsp::Decoder::Kind::packet);
    EXPECT_EQ(it.payload, "m1000,4");
    d.feed("$m#00", 5);
    EXPECT_EQ(d.next().kind, kq::rsp::Decoder::Kind::bad_checksum);
}

TEST(Rsp, EscapesSpecialCharacters) {
    std::string f = kq::rsp::frame("a#b");
    kq::rsp::Decoder d;
    d.feed(f.data(), f.size());
    EXPECT_EQ(d.next().payload, "a#b");
}

TEST(GdbServer, ThreadsRegistersAndMemory) {
    FakeTarget t;
    kq::GdbServer s(t);
    bool close = false;
    EXPECT_EQ(s.handle("qfThreadInfo", close), "m5,40000001");
    EXPECT_EQ(s.handle("qsThreadInfo", close), "l");
    std::string stop = s.handle("?", close);
    EXPECT_NE(stop.find("thread:5;"), std::string::npos);
    EXPECT_NE(stop.find("hexname:" + kq::rsp::to_hex("kq_sleep")), std::string::npos);
    EXPECT_NE(stop.find("threads:5,40000001;"), std::string::npos);
    // Register keys of a T packet are two hex digits (LLDB ignores others).
    EXPECT_NE(stop.find(";07:003e010000c9ffff;10:341200c0ffffffff;"), std::string::npos);
    EXPECT_NE(stop.find("reason:exception;description:" + kq::rsp::to_hex("S (sleeping), last ran on CPU 1")),
              std::string::npos);
    // Every thread's registers in jstopinfo (decimal register numbers); only
    // the stopping thread has a stop reason.
    auto at = stop.find("jstopinfo:");
    ASSERT_NE(at, std::string::npos);
    std::string hex = stop.substr(at + 10, stop.find(';', at) - at - 10), json;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) json += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    EXPECT_EQ(json,
              "[{\"tid\":5,\"name\":\"kq_sleep\",\"registers\":{\"7\":\"003e010000c9ffff\",\"16\":\"341200c0ffffffff\"},"
              "\"reason\":\"exception\",\"description\":\"S (sleeping), last ran on CPU 1\"},"
              "{\"tid\":1073741825,\"name\":\"swapper/1\",\"registers\":{\"16\":\"10000081ffffffff\"}}]");
    std::string other = s.handle("qThreadStopInfo40000001", close);
    EXPECT_EQ(other.rfind("T00thread:40000001;", 0), 0u);
    EXPECT_EQ(other.find("reason:"), std::string::npos);
    // rip is register 16 in the order given to LLDB, little endian.
    EXPECT_EQ(s.handle("p10;thread:5;", close), "341200c0ffffffff");
    EXPECT_EQ(s.handle("p0;thread:5;", close), std::string(16, 'x'));  // rax unknown in a switch frame
    EXPECT_EQ(s.handle("m ffffffff82000000,4", close), "E01");  // malformed address
    EXPECT_EQ(s.handle("mffffffff82000000,4", close), "deadbeef");
    EXPECT_EQ(s.handle("mffffffff82000000,8", close), "deadbeef");  // short read
    EXPECT_EQ(s.handle("m1000,4", close), "E08");
    EXPECT_EQ(s.handle("qOffsets", close), "Text=1e000000;Data=1e000000;Bss=1e000000");
    EXPECT_FALSE(close);
}

TEST(GdbServer, RefusesWrites) {
    FakeTarget t;
    kq::GdbServer s(t);
    bool close = false;
    EXPECT_EQ(s.handle("Mffffffff82000000,1:00", close), "E0e");
    EXPECT_EQ(s.handle("Z0,ffffffff81000000,1", close), "E0e");
    EXPECT_EQ(s.handle("P10=0000000000000000", close), "E0e");
}

TEST(GdbServer, RegisterInfoEndsWithError) {
    FakeTarget t;
    kq::GdbServer s(t);
    bool close = false;
    EXPECT_NE(s.handle("qRegisterInfo10", close).find("name:rip;"), std::string::npos);
    EXPECT_NE(s.handle("qRegisterInfo10", close).find("generic:pc;"), std::string::npos);
    EXPECT_EQ(s.handle("qRegisterInfo1a", close), "E45");
}
