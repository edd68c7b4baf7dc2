#include "remote/gdb_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <vector>

#include "remote/rsp.h"

namespace kq {
namespace {

// Register numbering presented to LLDB: gdb's amd64 order.
struct RegDesc {
    const char* name;
    Reg reg;
    unsigned bits;
    int dwarf;  // -1: none
    const char* generic;
    const char* alt;
};
const RegDesc kRegs[] = {
    {"rax", Reg::rax, 64, 0, nullptr, nullptr},     {"rbx", Reg::rbx, 64, 3, nullptr, nullptr},
    {"rcx", Reg::rcx, 64, 2, "arg4", nullptr},      {"rdx", Reg::rdx, 64, 1, "arg3", nullptr},
    {"rsi", Reg::rsi, 64, 4, "arg2", nullptr},      {"rdi", Reg::rdi, 64, 5, "arg1", nullptr},
    {"rbp", Reg::rbp, 64, 6, "fp", "fp"},           {"rsp", Reg::rsp, 64, 7, "sp", "sp"},
    {"r8", Reg::r8, 64, 8, "arg5", nullptr},        {"r9", Reg::r9, 64, 9, "arg6", nullptr},
    {"r10", Reg::r10, 64, 10, nullptr, nullptr},    {"r11", Reg::r11, 64, 11, nullptr, nullptr},
    {"r12", Reg::r12, 64, 12, nullptr, nullptr},    {"r13", Reg::r13, 64, 13, nullptr, nullptr},
    {"r14", Reg::r14, 64, 14, nullptr, nullptr},    {"r15", Reg::r15, 64, 15, nullptr, nullptr},
    {"rip", Reg::rip, 64, 16, "pc", "pc"},          {"eflags", Reg::eflags, 32, 49, "flags", "flags"},
    {"cs", Reg::cs, 32, 51, nullptr, nullptr},      {"ss", Reg::ss, 32, 52, nullptr, nullptr},
    {"ds", Reg::ds, 32, 53, nullptr, nullptr},      {"es", Reg::es, 32, 50, nullptr, nullptr},
    {"fs", Reg::fs, 32, 54, nullptr, nullptr},      {"gs", Reg::gs, 32, 55, nullptr, nullptr},
    {"fs_base", Reg::fs_base, 64, 58, nullptr, nullptr},
    {"gs_base", Reg::gs_base, 64, 59, nullptr, nullptr},
};
constexpr unsigned kNumRegs = sizeof kRegs / sizeof kRegs[0];

std::string hex_u64(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
    return b;
}

// Register keys of a T packet: LLDB takes a key as a register number only
// when it is exactly two hex digits.
std::string reg_key(unsigned regno) {
    char b[8];
    snprintf(b, sizeof b, "%02x", regno);
    return b;
}

std::string json_string(std::string_view s) {
    std::string r = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            r += '\\';
            r += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            char b[8];
            snprintf(b, sizeof b, "\\u%04x", c);
            r += b;
        } else {
            r += static_cast<char>(c);
        }
    }
    return r + "\"";
}

const std::string kTriple = "x86_64-unknown-linux-gnu";

bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

GdbServer::~GdbServer() { stop(); }

int GdbServer::start() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw Error(std::string("socket: ") + strerror(errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(listen_fd_, 1) < 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) < 0)
        throw Error(std::string("cannot listen on loopback: ") + strerror(errno));
    thread_ = std::thread([this] { serve(); });
    return ntohs(a.sin_port);
}

void GdbServer::stop() {
    stopping_ = true;
    if (int fd = conn_fd_.exchange(-1); fd >= 0) {
        shutdown(fd, SHUT_RDWR);
    }
    if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) close(listen_fd_);
    listen_fd_ = -1;
}

void GdbServer::serve() {
    pollfd p{listen_fd_, POLLIN, 0};
    while (!stopping_) {
        int r = poll(&p, 1, 200);
        if (r > 0) break;
        if (r < 0 && errno != EINTR) return;
    }
    if (stopping_) return;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn_fd_ = fd;
    rsp::Decoder dec;
    std::vector<char> buf(1 << 16);
    auto send_all = [&](const std::string& s) {
        for (size_t off = 0; off < s.size();) {
            ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return false;
            off += static_cast<size_t>(n);
        }
        return true;
    };
    bool close_conn = false;
    while (!stopping_ && !close_conn) {
        ssize_t n = recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        dec.feed(buf.data(), static_cast<size_t>(n));
        for (auto item = dec.next(); item.kind != rsp::Decoder::Kind::none; item = dec.next()) {
            using K = rsp::Decoder::Kind;
            if (item.kind == K::bad_checksum) {
                if (!no_ack_) send_all("-");
                continue;
            }
            if (item.kind == K::interrupt) {
                send_all(rsp::frame(stop_reply(target_.stop_thread(), true)));
                continue;
            }
            if (item.kind != K::packet) continue;
            bool was_no_ack = no_ack_;
            std::string reply;
            if (auto acts = target_.can_run() ? resume_actions(item.payload) : std::nullopt) {
                ++served_;
                if (!no_ack_ && !send_all("+")) break;
                reply = run(*acts, fd, dec, send_all);
                if (reply.empty()) {
                    close_conn = true;
                    break;
                }
                if (!send_all(rsp::frame(reply))) break;
                continue;
            }
            reply = handle(item.payload, close_conn);
            if (!was_no_ack && !send_all("+")) break;
            if (!send_all(rsp::frame(reply))) break;
            if (close_conn) break;
        }
    }
    if (int c = conn_fd_.exchange(-1); c >= 0) close(c);
    // LLDB went away without detaching: a live kernel runs on.
    target_.detach();
}

const RemoteThread* GdbServer::thread(int64_t tid) {
    const auto& ts = target_.threads();
    if (tid <= 0) tid = current_ > 0 ? current_ : target_.stop_thread();
    for (const auto& t : ts)
        if (t.tid == tid) return &t;
    return nullptr;
}

// LLDB appends ";thread:TID;" to register packets once QThreadSuffixSupported.
int64_t GdbServer::thread_suffix(std::string_view packet) {
    size_t at = packet.find(";thread:");
    if (at == std::string_view::npos) return 0;
    auto rest = packet.substr(at + 8);
    rest = rest.substr(0, rest.find(';'));
    return static_cast<int64_t>(rsp::parse_u64(rest).value_or(0));
}

std::string GdbServer::read_register(const RemoteThread& t, unsigned regno) {
    const RegDesc& d = kRegs[regno];
    if (!t.regs.has(d.reg)) return {};
    uint64_t v = t.regs.get(d.reg);
    return rsp::to_hex(&v, d.bits / 8);
}

// Only the thread the dump stopped in has a stop reason: LLDB unwinds the
// first frames of every thread that has one, at each stop, packet by packet.
// Every thread's registers come along in the stop reply's jstopinfo, so
// LLDB asks nothing per thread when it connects.
std::string GdbServer::stop_reply(int64_t tid, bool with_thread_list) {
    const RemoteThread* t = thread(tid);
    if (!t) return "S05";
    const bool stopped_here = t->tid == target_.stop_thread();
    char sig[8];
    snprintf(sig, sizeof sig, "T%02x", stopped_here ? target_.stop_signal() & 0xff : 0);
    std::string r = sig + std::string("thread:") + hex_u64(t->tid) +
                    ";hexname:" + rsp::to_hex(t->name) + ";";
    if (with_thread_list) {
        r += "threads:";
        bool first = true;
        for (const auto& th : target_.threads()) {
            if (!first) r += ',';
            r += hex_u64(th.tid);
            first = false;
        }
        r += ";jstopinfo:" + rsp::to_hex(threads_json()) + ";";
    }
    for (unsigned i = 0; i < kNumRegs; ++i) {
        std::string v = read_register(*t, i);
        if (!v.empty()) r += reg_key(i) + ":" + v + ";";
    }
    if (stopped_here) r += stop_reason_fields(*t);
    return r;
}

// jstopinfo: [{"tid":N,"name":"...","registers":{"REGNO":"HEX",...}}, ...],
// register numbers in decimal; the stopping thread also has its reason.
std::string GdbServer::threads_json() {
    std::string j = "[";
    for (const auto& t : target_.threads()) {
        if (j.size() > 1) j += ',';
        j += "{\"tid\":" + std::to_string(t.tid) + ",\"name\":" + json_string(t.name) + ",\"registers\":{";
        bool first = true;
        for (unsigned i = 0; i < kNumRegs; ++i) {
            std::string v = read_register(t, i);
            if (v.empty()) continue;
            j += std::string(first ? "" : ",") + "\"" + std::to_string(i) + "\":\"" + v + "\"";
            first = false;
        }
        j += "}";
        if (t.tid == target_.stop_thread()) {
            const std::string reason = target_.stop_reason();
            if (reason == "exception" && !t.description.empty())
                j += ",\"reason\":\"exception\",\"description\":" + json_string(t.description);
            else if (!reason.empty())
                j += ",\"reason\":" + json_string(reason);
            if (target_.can_run()) j += ",\"signal\":" + std::to_string(target_.stop_signal());
        }
        j += "}";
    }
    return j + "]";
}

// The stopping thread's reason: a dump's "exception" with the task's
// state as description; a live stop's reason, or none (LLDB then tells a
// breakpoint or a finished step from the PC and the signal).
std::string GdbServer::stop_reason_fields(const RemoteThread& t) {
    const std::string reason = target_.stop_reason();
    if (reason == "exception")
        return t.description.empty() ? "" : "reason:exception;description:" + rsp::to_hex(t.description) + ";";
    return reason.empty() ? "" : "reason:" + reason + ";";
}

// vCont;ACTION[:TID]... or c/s/C/S (s and S for the Hc thread): the
// actions, nullopt if `p` is no resume packet.
std::optional<std::vector<ResumeAction>> GdbServer::resume_actions(std::string_view p) const {
    std::vector<ResumeAction> acts;
    if (starts(p, "vCont;")) {
        std::string_view rest = p.substr(6);
        while (!rest.empty()) {
            std::string_view one = rest.substr(0, rest.find(';'));
            rest = one.size() < rest.size() ? rest.substr(one.size() + 1) : std::string_view();
            if (one.empty()) continue;
            ResumeAction a;
            a.action = (one[0] == 's' || one[0] == 'S') ? 's' : 'c';
            if (auto colon = one.find(':'); colon != std::string_view::npos) {
                std::string_view tid = one.substr(colon + 1);
                a.tid = tid == "-1" ? -1 : static_cast<int64_t>(rsp::parse_u64(tid).value_or(0));
            }
            acts.push_back(a);
        }
        return acts;
    }
    if (p == "c" || p == "s" || starts(p, "C") || starts(p, "S")) {
        if (p.size() > 1 && p[0] != 'C' && p[0] != 'S') return std::nullopt;  // "c ADDR" is not supported
        const bool step = p[0] == 's' || p[0] == 'S';
        acts.push_back({step ? 's' : 'c', step && resume_thread_ > 0 ? resume_thread_ : -1});
        return acts;
    }
    return std::nullopt;
}

// A live target runs until it stops or LLDB interrupts it: the reply to
// the resume is that stop. Returns "" if LLDB's connection went away.
std::string GdbServer::run(const std::vector<ResumeAction>& actions, int fd, rsp::Decoder& dec,
                           const std::function<bool(const std::string&)>& send_all) {
    if (std::string err = target_.resume(actions); !err.empty()) return err;
    // A target may stop at once (a live kernel handing LLDB a new state).
    if (RunState st = target_.poll_stop(); st != RunState::running)
        return st == RunState::stopped ? stop_reply(target_.stop_thread(), true) : "X09";
    std::vector<char> buf(4096);
    while (!stopping_) {
        pollfd p[2] = {{fd, POLLIN, 0}, {target_.event_fd(), POLLIN, 0}};
        int r = poll(p, 2, 200);
        if (r < 0 && errno != EINTR) break;
        if (r <= 0) continue;
        if (p[1].revents) {
            RunState st = target_.poll_stop();
            if (st == RunState::stopped) return stop_reply(target_.stop_thread(), true);
            if (st == RunState::gone) return "X09";
        }
        if (p[0].revents) {
            ssize_t n = recv(fd, buf.data(), buf.size(), 0);
            if (n <= 0) break;
            dec.feed(buf.data(), static_cast<size_t>(n));
            for (auto item = dec.next(); item.kind != rsp::Decoder::Kind::none; item = dec.next()) {
                if (item.kind == rsp::Decoder::Kind::interrupt) target_.interrupt();
                // In all-stop mode nothing else is asked while running.
                else if (item.kind == rsp::Decoder::Kind::packet && !send_all((no_ack_ ? "" : "+") + rsp::frame("E16")))
                    return {};
            }
        }
    }
    target_.detach();
    return {};
}

std::string GdbServer::handle(std::string_view p, bool& close) {
    ++served_;
    if (p.empty()) return {};
    if (starts(p, "qSupported"))
        return "PacketSize=20000;QStartNoAckMode+;QThreadSuffixSupported+;QListThreadsInStopReply+";
    if (p == "QStartNoAckMode") { no_ack_ = true; return "OK"; }
    if (p == "QThreadSuffixSupported" || p == "QListThreadsInStopReply" || starts(p, "QEnableErrorStrings"))
        return "OK";
    if (p == "qHostInfo" || p == "qProcessInfo") {
        std::string r = "triple:" + rsp::to_hex(kTriple) + ";ptrsize:8;endian:little;";
        if (p == "qProcessInfo") r = "pid:1;parent-pid:0;real-uid:0;real-gid:0;" + r;
        return r;
    }
    if (p == "qC") return "QC" + hex_u64(thread(0) ? thread(0)->tid : 1);
    if (p == "qAttached") return "1";
    if (p == "?") return stop_reply(target_.stop_thread(), true);
    if (p == "qfThreadInfo") {
        std::string r = "m";
        for (const auto& t : target_.threads()) r += hex_u64(t.tid) + ",";
        if (r.size() > 1) r.pop_back();
        return r;
    }
    if (p == "qsThreadInfo") return "l";
    if (starts(p, "qThreadStopInfo")) {
        auto tid = rsp::parse_u64(p.substr(15));
        if (!tid || !thread(static_cast<int64_t>(*tid))) return "E01";
        return stop_reply(static_cast<int64_t>(*tid), false);
    }
    if (starts(p, "qThreadExtraInfo,")) {
        auto tid = rsp::parse_u64(p.substr(17));
        const RemoteThread* t = tid ? thread(static_cast<int64_t>(*tid)) : nullptr;
        return t ? rsp::to_hex(t->description) : "E01";
    }
    if (starts(p, "qRegisterInfo")) {
        auto n = rsp::parse_u64(p.substr(13));
        if (!n || *n >= kNumRegs) return "E45";
        const RegDesc& d = kRegs[*n];
        unsigned offset = 0;
        for (unsigned i = 0; i < *n; ++i) offset += kRegs[i].bits / 8;
        std::string r = std::string("name:") + d.name + ";bitsize:" + std::to_string(d.bits) +
                        ";offset:" + std::to_string(offset) + ";encoding:uint;format:hex;" +
                        "set:General Purpose Registers;";
        if (d.alt) r += std::string("alt-name:") + d.alt + ";";
        if (d.dwarf >= 0) r += "ehframe:" + std::to_string(d.dwarf) + ";dwarf:" + std::to_string(d.dwarf) + ";";
        if (d.generic) r += std::string("generic:") + d.generic + ";";
        return r;
    }
    if (p[0] == 'H' && p.size() >= 2) {
        auto s = p.substr(2);
        const int64_t tid = (s == "-1" || s == "0") ? 0 : static_cast<int64_t>(rsp::parse_u64(s).value_or(0));
        if (p[1] == 'g') current_ = tid;
        if (p[1] == 'c') resume_thread_ = tid;
        return "OK";
    }
    if (p[0] == 'p') {
        auto end = p.find(';');
        auto n = rsp::parse_u64(p.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1));
        const RemoteThread* t = thread(thread_suffix(p));
        if (!n || *n >= kNumRegs || !t) return "E01";
        std::string v = read_register(*t, static_cast<unsigned>(*n));
        // Unknown (not saved in a switch frame): 'x' digits mark it unavailable.
        return v.empty() ? std::string(kRegs[*n].bits / 4, 'x') : v;
    }
    if (p[0] == 'g' && (p.size() == 1 || p[1] == ';')) {
        const RemoteThread* t = thread(thread_suffix(p));
        if (!t) return "E01";
        std::string r;
        for (unsigned i = 0; i < kNumRegs; ++i) {
            std::string v = read_register(*t, i);
            r += v.empty() ? std::string(kRegs[i].bits / 4, 'x') : v;
        }
        return r;
    }
    if (p[0] == 'm') {
        auto comma = p.find(',');
        if (comma == std::string_view::npos) return "E01";
        auto addr = rsp::parse_u64(p.substr(1, comma - 1));
        auto len = rsp::parse_u64(p.substr(comma + 1));
        if (!addr || !len) return "E01";
        std::string data(std::min<uint64_t>(*len, 0x8000), '\0');
        size_t got = target_.memory().read(*addr, data.data(), data.size());
        if (got == 0) return "E08";
        return rsp::to_hex(data.data(), got);
    }
    if (p == "qOffsets") {
        std::string s = hex_u64(target_.image_slide());
        return "Text=" + s + ";Data=" + s + ";Bss=" + s;
    }
    if (starts(p, "qSymbol")) return "OK";
    // A live kernel is never killed: LLDB's kill detaches, and it runs on.
    if (p == "k" || p[0] == 'D') {
        target_.detach();
        close = true;
        return "OK";
    }
    if (p == "vCont?") return target_.can_run() ? "vCont;c;C;s;S" : "";
    if (target_.can_run() && (p[0] == 'Z' || p[0] == 'z') && p.size() > 3 && p[2] == ',') {
        auto rest = p.substr(3);
        auto comma = rest.find(',');
        auto addr = rsp::parse_u64(rest.substr(0, comma));
        auto kind = comma == std::string_view::npos ? std::optional<uint64_t>(1) : rsp::parse_u64(rest.substr(comma + 1, rest.find(';') - comma - 1));
        if (!addr || !kind || p[1] < '0' || p[1] > '4') return "E01";
        return target_.breakpoint(p[0] == 'Z', p[1] - '0', *addr, *kind);
    }
    if (target_.can_run() && (p[0] == 'M' || p[0] == 'X')) {
        auto comma = p.find(','), colon = p.find(':');
        if (comma == std::string_view::npos || colon == std::string_view::npos || colon < comma) return "E01";
        auto addr = rsp::parse_u64(p.substr(1, comma - 1));
        auto len = rsp::parse_u64(p.substr(comma + 1, colon - comma - 1));
        std::optional<std::string> data;
        if (p[0] == 'M') data = rsp::from_hex(p.substr(colon + 1));
        else data = std::string(p.substr(colon + 1));  // X: binary, already unescaped
        if (!addr || !len || !data || data->size() != *len) return "E01";
        if (*len == 0) return "OK";  // LLDB probes X support with an empty write
        return target_.write_memory(*addr, *data);
    }
    // A dump cannot run: any resume ends in the same stop at once.
    if (p == "c" || p == "s" || starts(p, "vCont;") || starts(p, "C") || starts(p, "S"))
        return stop_reply(target_.stop_thread(), true);
    // Writes are refused: the target is read-only.
    if (p[0] == 'M' || p[0] == 'X' || p[0] == 'P' || p[0] == 'G' || p[0] == 'Z') return "E0e";
    return {};  // unsupported
}

}  // namespace kq
