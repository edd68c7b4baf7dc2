#include "remote/live_target.h"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "remote/dump_target.h"

namespace kq {
namespace {

std::string hex(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
    return b;
}

// GDB's amd64 'g' layout up to gs_base, for a stub that does not describe
// its registers.
std::vector<std::pair<std::string, unsigned>> default_layout() {
    std::vector<std::pair<std::string, unsigned>> l;
    for (const char* n : {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
                          "r13", "r14", "r15", "rip"})
        l.emplace_back(n, 64);
    for (const char* n : {"eflags", "cs", "ss", "ds", "es", "fs", "gs"}) l.emplace_back(n, 32);
    l.emplace_back("fs_base", 64);
    l.emplace_back("gs_base", 64);
    return l;
}

const std::pair<const char*, Reg> kRegNames[] = {
    {"rax", Reg::rax}, {"rbx", Reg::rbx}, {"rcx", Reg::rcx}, {"rdx", Reg::rdx}, {"rsi", Reg::rsi},
    {"rdi", Reg::rdi}, {"rbp", Reg::rbp}, {"rsp", Reg::rsp}, {"r8", Reg::r8}, {"r9", Reg::r9},
    {"r10", Reg::r10}, {"r11", Reg::r11}, {"r12", Reg::r12}, {"r13", Reg::r13}, {"r14", Reg::r14},
    {"r15", Reg::r15}, {"rip", Reg::rip}, {"eflags", Reg::eflags}, {"cs", Reg::cs}, {"ss", Reg::ss},
    {"ds", Reg::ds}, {"es", Reg::es}, {"fs", Reg::fs}, {"gs", Reg::gs}, {"fs_base", Reg::fs_base},
    {"gs_base", Reg::gs_base}};

// The value of attribute `name` in one XML element's text.
std::string attr(std::string_view elem, std::string_view name) {
    std::string key = " " + std::string(name) + "=\"";
    auto at = elem.find(key);
    if (at == std::string_view::npos) return {};
    at += key.size();
    auto end = elem.find('"', at);
    return end == std::string_view::npos ? std::string() : std::string(elem.substr(at, end - at));
}

// Thread ids as numbers: "2", "02", "p1.2" and "p01.02" may name one vCPU.
bool same_thread(std::string_view a, std::string_view b) {
    auto key = [](std::string_view id) -> std::pair<std::optional<uint64_t>, std::optional<uint64_t>> {
        if (id.size() > 1 && id[0] == 'p') {
            auto dot = id.find('.');
            if (dot == std::string_view::npos) return {rsp::parse_u64(id.substr(1)), 0};
            return {rsp::parse_u64(id.substr(1, dot - 1)), rsp::parse_u64(id.substr(dot + 1))};
        }
        return {std::nullopt, rsp::parse_u64(id)};
    };
    auto ka = key(a), kb = key(b);
    return ka.second && ka.second == kb.second && (!ka.first || !kb.first || ka.first == kb.first);
}

// The thread a stop reply names ("T05thread:p01.02;" -> "p01.02").
std::string stop_thread_id(const std::string& reply) {
    auto at = reply.find("thread:");
    if (at == std::string::npos) return {};
    return reply.substr(at + 7, reply.find(';', at) - at - 7);
}

}  // namespace

LiveTarget::LiveTarget(StubOptions opts) : opts_(opts), stub_(std::move(opts)), mem_(stub_) {
    std::unique_lock g(stub_.lock());
    // The vCPUs: qfThreadInfo, then qsThreadInfo until 'l'.
    for (std::string r = stub_.request("qfThreadInfo"); !r.empty() && r[0] == 'm'; r = stub_.request("qsThreadInfo")) {
        std::string_view ids = std::string_view(r).substr(1);
        while (!ids.empty()) {
            auto comma = ids.find(',');
            vcpu_ids_.emplace_back(ids.substr(0, comma));
            ids = comma == std::string_view::npos ? std::string_view() : ids.substr(comma + 1);
        }
        if (vcpu_ids_.size() > 4096) break;
    }
    if (vcpu_ids_.empty()) throw Error("the GDB stub lists no threads (virtual CPUs)");

    // The 'g' packet's layout from the stub's target description, else GDB's.
    reg_layout_ = default_layout();
    if (stub_.features().find("qXfer:features:read+") != std::string::npos) {
        auto fetch = [&](const std::string& annex) {
            std::string doc;
            for (int i = 0; i < 64; ++i) {
                std::string r = stub_.request("qXfer:features:read:" + annex + ":" + hex(doc.size()) + ",ffb");
                if (r.empty() || (r[0] != 'm' && r[0] != 'l')) break;
                doc += r.substr(1);
                if (r[0] == 'l') break;
            }
            return doc;
        };
        std::string xml = fetch("target.xml");
        for (size_t at = xml.find("<xi:include"); at != std::string::npos; at = xml.find("<xi:include", at + 1))
            if (std::string href = attr(std::string_view(xml).substr(at, xml.find('>', at) - at), "href"); !href.empty())
                xml += fetch(href);
        std::vector<std::pair<std::string, unsigned>> l;
        for (size_t at = xml.find("<reg "); at != std::string::npos; at = xml.find("<reg ", at + 1)) {
            std::string_view e = std::string_view(xml).substr(at, xml.find('>', at) - at);
            std::string name = attr(e, "name"), bits = attr(e, "bitsize");
            if (name.empty() || bits.empty()) break;
            l.emplace_back(name, static_cast<unsigned>(std::stoul(bits)));
        }
        if (l.size() >= 17 && l[16].first == "rip") reg_layout_ = std::move(l);
    }
    stub_.request("?", true);  // the stop the connection caused
    g.unlock();
    read_vcpus();
}

LiveTarget::~LiveTarget() { detach(); }

// Each vCPU's registers: Hg and g for every one, all in flight together.
void LiveTarget::read_vcpus() {
    std::vector<std::string> req;
    for (const auto& id : vcpu_ids_) {
        req.push_back("Hg" + id);
        req.push_back("g");
    }
    std::vector<std::string> rep;
    {
        std::lock_guard g(stub_.lock());
        rep = stub_.request_all(req);
    }
    vcpus_.clear();
    for (size_t i = 0; i < vcpu_ids_.size(); ++i) {
        CpuState c;
        c.cpu = static_cast<int>(i);
        c.pid = static_cast<uint32_t>(i + 1);
        const std::string& g = rep[2 * i + 1];
        size_t off = 0;
        for (const auto& [name, bits] : reg_layout_) {
            const size_t digits = bits / 4;
            if (off + digits > g.size()) break;
            for (const auto& [n, reg] : kRegNames) {
                if (name != n || bits > 64) continue;
                if (auto bytes = rsp::from_hex(std::string_view(g).substr(off, digits))) {
                    uint64_t v = 0;
                    memcpy(&v, bytes->data(), bytes->size());
                    c.regs.set(reg, v);
                }
            }
            off += digits;
        }
        vcpus_.push_back(c);
    }
}

void LiveTarget::set_tasks(Tasks tasks) {
    tasks_ = std::move(tasks);
    refresh("");
}

const Thread* LiveTarget::task_of(int64_t tid) const {
    for (const auto& t : tasks_now_)
        if (t.id == tid) return &t;
    return nullptr;
}

const Thread* LiveTarget::task_on_vcpu(size_t vcpu) const {
    if (vcpu >= cpu_of_vcpu_.size() || cpu_of_vcpu_[vcpu] < 0) return nullptr;
    for (const auto& t : tasks_now_)
        if (t.on_cpu && t.cpu == cpu_of_vcpu_[vcpu]) return &t;
    return nullptr;
}

// The tasks at this stop, and which one LLDB is told stopped: the task on
// the CPU the stub reported.
void LiveTarget::refresh(const std::string& stop_vcpu) {
    read_vcpus();
    cpu_of_vcpu_.assign(vcpus_.size(), -1);
    tasks_now_ = tasks_ ? tasks_(vcpus_, cpu_of_vcpu_) : std::vector<Thread>{};
    threads_.clear();
    for (const auto& t : tasks_now_) threads_.push_back({t.id, t.name, describe_thread_state(t), t.regs});
    int cpu = -1;
    for (size_t i = 0; i < vcpu_ids_.size(); ++i)
        if (same_thread(vcpu_ids_[i], stop_vcpu) && i < cpu_of_vcpu_.size()) cpu = cpu_of_vcpu_[i];
    const Thread* stopped = nullptr;
    for (const auto& t : tasks_now_)
        if (t.on_cpu && (t.cpu == cpu || (!stopped && cpu < 0))) {
            stopped = &t;
            if (t.cpu == cpu) break;
        }
    if (!stopped && !tasks_now_.empty()) stopped = &tasks_now_.front();
    stop_tid_ = stopped ? stopped->id : 1;
    reason_.clear();
    if (stopped && stopped->regs.has(Reg::rip))
        for (int type : {0, 1})
            if (breakpoints_.count({type, stopped->regs.get(Reg::rip)})) reason_ = "breakpoint";
}

std::string LiveTarget::resume(const std::vector<ResumeAction>& actions) {
    if (resync_) {
        // A command ran the kernel behind LLDB's back: this resume's stop
        // (at once, the kernel untouched) hands LLDB the new state.
        running_ = true;
        return {};
    }
    std::string pkt = "vCont";
    char others = 0;
    for (const auto& a : actions) {
        if (a.tid <= 0) {
            others = a.action;
            continue;
        }
        const Thread* t = task_of(a.tid);
        int vcpu = -1;
        if (t && t->on_cpu)
            for (size_t i = 0; i < cpu_of_vcpu_.size(); ++i)
                if (cpu_of_vcpu_[i] == t->cpu) vcpu = static_cast<int>(i);
        if (vcpu < 0) {
            // A task off the CPUs cannot run alone: stepping it is refused,
            // continuing it continues the kernel.
            if (a.action == 's') return "E01";
            others = 'c';
            continue;
        }
        pkt += std::string(";") + a.action + ":" + vcpu_ids_[vcpu];
    }
    if (others) pkt += std::string(";") + others;
    if (pkt == "vCont") pkt = "vCont;c";
    mem_.resumed();
    running_ = true;
    try {
        std::lock_guard g(stub_.lock());
        stub_.resume(pkt);
    } catch (const Error&) {
        return "E05";
    }
    return {};
}

RunState LiveTarget::poll_stop() {
    if (resync_.exchange(false)) {
        signal_ = 2;
        refresh(vcpu_ids_[stop_vcpu_]);
        reason_ = "signal";
        ++stops_;
        running_ = false;
        return RunState::stopped;
    }
    bool closed = false;
    std::optional<std::string> r;
    {
        std::lock_guard g(stub_.lock());
        r = stub_.poll_stop(closed);
    }
    if (!r && !closed) return RunState::running;
    if (closed || (*r)[0] == 'W' || (*r)[0] == 'X') {
        // The stub went away (QEMU quit) or the target exited: nothing to
        // detach from.
        detached_ = true;
        running_ = false;
        return RunState::gone;
    }
    signal_ = static_cast<int>(rsp::parse_u64(std::string_view(*r).substr(1, 2)).value_or(5));
    const std::string vcpu = stop_thread_id(*r);
    for (size_t i = 0; i < vcpu_ids_.size(); ++i)
        if (same_thread(vcpu_ids_[i], vcpu)) stop_vcpu_ = i;
    mem_.stopped();
    try {
        refresh(vcpu);
    } catch (const Error&) {
        // Tasks unreadable at this stop: the last ones stand.
    }
    ++stops_;
    running_ = false;
    return RunState::stopped;
}

void LiveTarget::stopped_at(const std::string& reply) {
    const std::string vcpu = stop_thread_id(reply);
    for (size_t i = 0; i < vcpu_ids_.size(); ++i)
        if (same_thread(vcpu_ids_[i], vcpu)) stop_vcpu_ = i;
    signal_ = static_cast<int>(rsp::parse_u64(std::string_view(reply).substr(1, 2)).value_or(5));
    mem_.stopped();
    read_vcpus();
    ++stops_;
    running_ = false;
}

bool LiveTarget::await_stop(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        bool closed = false;
        std::optional<std::string> r;
        {
            std::lock_guard g(stub_.lock());
            r = stub_.poll_stop(closed);
        }
        if (closed || (r && ((*r)[0] == 'W' || (*r)[0] == 'X'))) {
            detached_ = true;
            running_ = false;
            throw Error("the GDB stub went away while the kernel ran");
        }
        if (r) {
            stopped_at(*r);
            return true;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return false;
        pollfd p{stub_.fd(), POLLIN, 0};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
        poll(&p, 1, static_cast<int>(std::min<long long>(left, 200)) + 1);
    }
}

LiveTarget::Run LiveTarget::run(std::chrono::milliseconds timeout) {
    if (detached_) throw Error("no longer attached to the live kernel");
    mem_.resumed();
    running_ = true;
    {
        std::lock_guard g(stub_.lock());
        stub_.resume("vCont;c");
    }
    try {
        if (await_stop(std::chrono::steady_clock::now() + timeout)) return Run::stopped;
        interrupt();
        if (await_stop(std::chrono::steady_clock::now() + std::chrono::seconds(10))) return Run::timed_out;
    } catch (const Error&) {
        return Run::gone;
    }
    throw Error("the kernel did not stop when interrupted");
}

void LiveTarget::step_over(size_t vcpu) {
    const uint64_t pc = vcpus_.at(vcpu).regs.get(Reg::rip);
    const auto bp = breakpoints_.find({0, pc});
    if (bp != breakpoints_.end()) {
        std::lock_guard g(stub_.lock());
        stub_.request("z0," + hex(pc) + "," + hex(bp->second));
    }
    mem_.resumed();
    running_ = true;
    {
        std::lock_guard g(stub_.lock());
        stub_.resume("vCont;s:" + vcpu_ids_[vcpu]);
    }
    const bool done = await_stop(std::chrono::steady_clock::now() + std::chrono::seconds(10));
    if (bp != breakpoints_.end()) {
        std::lock_guard g(stub_.lock());
        stub_.request("Z0," + hex(pc) + "," + hex(bp->second));
    }
    if (!done) throw Error("a single step on CPU " + std::to_string(vcpu) + " did not end");
}

void LiveTarget::set_registers(size_t vcpu, const std::vector<std::pair<Reg, uint64_t>>& regs) {
    if (write_grants_ == 0) throw Error("internal: register write without a write grant");
    std::lock_guard g(stub_.lock());
    if (std::string r = stub_.request("Hg" + vcpu_ids_.at(vcpu)); r != "OK")
        throw Error("the stub refused to select CPU " + std::to_string(vcpu) + ": " + r);
    for (const auto& [reg, value] : regs) {
        size_t num = reg_layout_.size();
        for (size_t i = 0; i < reg_layout_.size(); ++i)
            for (const auto& [n, r] : kRegNames)
                if (r == reg && reg_layout_[i].first == n && reg_layout_[i].second == 64) num = i;
        if (num == reg_layout_.size()) throw Error("the stub has no 64-bit register for this write");
        uint8_t le[8];
        memcpy(le, &value, 8);
        if (std::string r = stub_.request("P" + hex(num) + "=" + rsp::to_hex(le, 8));
            r != "OK")
            throw Error("the stub refused a register write: " + r);
        vcpus_[vcpu].regs.set(reg, value);
    }
}

std::string LiveTarget::read_as_cpu(size_t vcpu, uint64_t addr, size_t len) {
    std::lock_guard g(stub_.lock());
    if (stub_.request("Hg" + vcpu_ids_.at(vcpu)) != "OK") return {};
    const std::string r = stub_.request("m" + hex(addr) + "," + hex(std::min(len, stub_.max_read())));
    auto bytes = r.empty() || r[0] == 'E' ? std::nullopt : rsp::from_hex(r);
    return bytes.value_or(std::string());
}

void LiveTarget::interrupt() {
    std::lock_guard g(stub_.lock());
    stub_.interrupt();
}

std::string LiveTarget::breakpoint(bool insert, int type, uint64_t addr, uint64_t kind) {
    std::string reply;
    try {
        std::lock_guard g(stub_.lock());
        reply = stub_.request(std::string(insert ? "Z" : "z") + std::to_string(type) + "," + hex(addr) + "," + hex(kind));
    } catch (const Error&) {
        return "E05";
    }
    if (reply == "OK") {
        if (insert) breakpoints_[{type, addr}] = kind;
        else breakpoints_.erase({type, addr});
    }
    return reply;
}

std::string LiveTarget::write_memory(uint64_t addr, const std::string& bytes) {
    if (write_grants_ == 0) return "E0e";  // read-only unless a command says it writes
    return mem_.write(addr, bytes.data(), bytes.size()) ? "OK" : "E0e";
}

void LiveTarget::detach() {
    if (detached_) return;
    detached_ = true;
    try {
        std::lock_guard g(stub_.lock());
        if (running_) {
            stub_.interrupt();
            bool closed = false;
            for (int i = 0; i < 40 && !stub_.poll_stop(closed) && !closed; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        for (const auto& [at, kind] : breakpoints_)
            stub_.request("z" + std::to_string(at.first) + "," + hex(at.second) + "," + hex(kind));
        breakpoints_.clear();
        // A stub in multiprocess mode (thread ids "pPID.TID"; QEMU keeps it
        // from an earlier client) wants the process: "D;PID".
        std::string d = "D";
        if (vcpu_ids_.front().size() > 1 && vcpu_ids_.front()[0] == 'p')
            d += ";" + vcpu_ids_.front().substr(1, vcpu_ids_.front().find('.') - 1);
        stub_.request(d);
    } catch (const Error&) {
        // The stub is gone: nothing left to undo.
    }
}

}  // namespace kq
