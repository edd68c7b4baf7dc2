#include "kernel/linux/crash_context.h"

#include <cstdio>
#include <cstring>
#include <string_view>

#include "unwinder/unwinder.h"

namespace kq {
namespace {

bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::optional<uint64_t> hex_after(const std::string& s, std::string_view key) {
    size_t at = s.find(key);
    if (at == std::string::npos) return std::nullopt;
    at += key.size();
    while (at < s.size() && s[at] == ' ') ++at;
    size_t end = at;
    while (end < s.size() && isxdigit(static_cast<unsigned char>(s[end]))) ++end;
    if (end == at) return std::nullopt;
    return std::stoull(s.substr(at, end - at), nullptr, 16);
}

// "CPU: 1 PID: 0 Comm: swapper/1 Tainted: G ..." (or "Not tainted").
void parse_cpu_line(const std::string& s, OopsLog& o) {
    int cpu = -1;
    long long pid = -1;
    if (sscanf(s.c_str(), "CPU: %d PID: %lld", &cpu, &pid) != 2) return;
    o.cpu = cpu;
    o.pid = pid;
    size_t c = s.find("Comm: ");
    if (c == std::string::npos) return;
    c += 6;
    size_t end = s.find(" Tainted:", c);
    if (end == std::string::npos) end = s.find(" Not tainted", c);
    o.comm = s.substr(c, end == std::string::npos ? std::string::npos : end - c);
}

// The first line of an oops: a fault (page fault, NULL pointer, general
// protection, stack segment), BUG() or an invalid opcode. Other "BUG: "
// reports (soft lockup, scheduling while atomic ...) are warnings, no oops.
bool opens_oops(const std::string& t) {
    return starts(t, "BUG: unable to handle ") || starts(t, "BUG: kernel NULL pointer dereference") ||
           starts(t, "Oops: ") || starts(t, "general protection fault") || starts(t, "kernel BUG at") ||
           starts(t, "stack segment: ") || starts(t, "invalid opcode: ");
}

int32_t read_i32(MemorySource& mem, uint64_t a, int32_t dflt) { return mem.read_as<int32_t>(a).value_or(dflt); }

// tainted_mask as letters, from the kernel's own table taint_flags[] (struct
// taint_flag {c_true, c_false, module}), as print_tainted() writes them,
// trailing blanks dropped; "" when the kernel is not tainted.
std::string taint_letters(const LinuxKernel& k, std::vector<std::string>& notes) {
    auto mask = k.find_symbol("tainted_mask");
    const ElfSymbol* tf = k.vmlinux().symbol("taint_flags");
    auto size = k.types().size("taint_flag");
    auto c_true = k.types().offset("taint_flag", "c_true"), c_false = k.types().offset("taint_flag", "c_false");
    if (!mask || !tf || !size || !*size || !c_true || !c_false) {
        notes.push_back("taint flags: tainted_mask or taint_flags[] not in this kernel's symbols and DWARF");
        return "";
    }
    auto m = k.read_u64(*mask);
    if (!m) return "";
    const uint64_t n = tf->size / *size, base = tf->value + k.slide();
    std::string s;
    for (uint64_t i = 0; i < n && i < 64; ++i) {
        // print_tainted(): c_true for a set flag, c_false ('G' for P, else ' ') otherwise.
        const uint64_t off = (*m >> i) & 1 ? *c_true : *c_false;
        auto v = k.mem().read_as<char>(base + i * *size + off);
        s += v && *v ? *v : '?';
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return *m ? s : "";
}

// A pt_regs saved by an exception in kernel mode: kernel code and stack
// segments (RPL 0), EFLAGS with its always-one bit and no bit above ID, a
// kernel pc, and the interrupted sp above the pt_regs itself.
bool plausible_kernel_regs(uint64_t cs, uint64_t ss, uint64_t flags, uint64_t ip, uint64_t sp, uint64_t end) {
    return cs && cs < 0x100 && (cs & 3) == 0 && ss < 0x100 && (ss & 3) == 0 && (flags & 2) && flags < (1u << 22) &&
           ip >= 0xffff800000000000ull && sp >= end && sp - end < 64 * 1024;
}

void fault_from_pc(MemorySource& mem, uint64_t pc, CrashContext& c) {
    if (c.fault_address) return;
    // An instruction fetch from unmapped memory faults at the pc itself.
    uint8_t b;
    if (!mem.read_exact(pc, &b, 1)) {
        c.fault_address = pc;
        c.fault_address_source = "pt_regs ip (unmapped: an instruction fetch)";
    }
}

}  // namespace

OopsLog parse_oops(const KernelLog& log) {
    OopsLog o;
    const auto& r = log.records;
    size_t panic = r.size();
    for (size_t i = 0; i < r.size(); ++i)
        if (starts(r[i].text, "Kernel panic - not syncing: ")) {
            panic = i;
            break;
        }
    size_t start = r.size();
    for (size_t i = panic; i-- > 0;)
        if (opens_oops(r[i].text)) {
            start = i;
            break;
        }
    // "BUG: ..." comes a few lines before "Oops: ...": the oops starts there.
    if (start < r.size() && starts(r[start].text, "Oops: "))
        for (size_t i = start; i-- > 0 && start - i <= 6;)
            if (starts(r[i].text, "BUG: ") && opens_oops(r[i].text)) start = i;
    if (panic < r.size()) o.panic = r[panic].text.substr(strlen("Kernel panic - not syncing: "));
    if (start == r.size()) return o;
    o.found = true;
    const size_t end = panic < r.size() ? panic : std::min(r.size() - 1, start + 200);
    bool rip_seen = false;
    for (size_t i = start; i <= end && i < r.size(); ++i) {
        const std::string& t = r[i].text;
        if (o.lines.size() < 400) o.lines.push_back(t);
        if (starts(t, "BUG: ") && opens_oops(t) && o.bug.empty()) {
            o.bug = t;
            if (auto a = hex_after(t, "address:")) o.address = a;
        } else if (starts(t, "#PF: supervisor ") && o.access.empty()) {
            size_t in = t.find(" in ");
            o.access = t.substr(16, in == std::string::npos ? std::string::npos : in - 16);
        } else if (opens_oops(t) && o.oops.empty()) {
            o.oops = t;
        } else if (starts(t, "CPU: ") && o.cpu < 0) {
            parse_cpu_line(t, o);
        } else if (starts(t, "RIP: ") && !rip_seen) {
            o.rip = t.substr(5);
            rip_seen = true;
        } else if (starts(t, "Workqueue: ") && o.workqueue.empty()) {
            o.workqueue = t.substr(11);
        } else if (starts(t, "Modules linked in:") && o.modules.empty()) {
            o.modules = t.substr(18);
            if (!o.modules.empty() && o.modules[0] == ' ') o.modules.erase(0, 1);
            size_t lu = t.find("[last unloaded: ");
            if (lu != std::string::npos) {
                lu += 16;
                size_t e = t.find_first_of("(]", lu);
                o.last_unloaded = t.substr(lu, e == std::string::npos ? std::string::npos : e - lu);
            }
        } else if (starts(t, "CR2: ") && !o.address) {
            // The summary after the module list repeats the fault's address;
            // the register dump's CR2 may be a later fault (reading the code bytes).
            if (i > 0 && starts(r[i - 1].text, "Modules linked in:")) o.address = hex_after(t, "CR2:");
        }
    }
    return o;
}

CrashContext read_crash_context(const LinuxKernel& k, const std::vector<Thread>& threads, const KernelLog* log) {
    CrashContext c;
    MemorySource& mem = k.mem();
    const uint64_t counter = k.types().offset("atomic_t", "counter").value_or(0);
    if (auto p = k.find_symbol("panic_cpu")) {
        // PANIC_CPU_INVALID (-1) until a CPU enters panic().
        const int32_t cpu = read_i32(mem, *p + counter, -1);
        if (cpu >= 0 && cpu < k.nr_cpus()) {
            c.panicked = true;
            c.panic_cpu = cpu;
        }
    } else {
        c.notes.push_back("no panic_cpu in this kernel's symbols");
    }
    if (auto lu = k.find_symbol("last_unloaded_module")) {
        // A char array in 6.1; later an anonymous struct whose first member is the name.
        c.last_unloaded_module = mem.read_cstr(*lu, 64);
        for (char ch : c.last_unloaded_module)
            if (!(isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-')) {
                c.notes.push_back("last_unloaded_module does not hold a module name");
                c.last_unloaded_module.clear();
                break;
            }
    } else {
        c.notes.push_back("no last_unloaded_module in this kernel's symbols");
    }
    c.taint = taint_letters(k, c.notes);
    if (log) c.oops = parse_oops(*log);
    if (c.oops.address) {
        c.fault_address = c.oops.address;
        c.fault_address_source = "log";
    }
    const int cpu = c.panicked ? c.panic_cpu : c.oops.cpu;
    for (const auto& t : threads)
        if (cpu >= 0 && t.on_cpu && t.cpu == cpu) c.task = t;
    if (!c.task && c.oops.pid > 0)
        for (const auto& t : threads)
            if (t.id == c.oops.pid) c.task = t;
    return c;
}

bool locate_exception_regs(const LinuxKernel& k, const std::vector<Frame>& frames, CrashContext& c) {
    PtRegsLayout L;
    try {
        L = PtRegsLayout::from_types(k.types());
    } catch (const Error& e) {
        c.notes.push_back(e.what());
        return false;
    }
    MemorySource& mem = k.mem();
    for (size_t i = 1; i < frames.size(); ++i) {
        const Frame& f = frames[i];
        // A pc taken from a pt_regs is exact (not a return address) and has no call to check.
        if (f.return_address || f.method == UnwindMethod::initial || f.check != ReturnCheck::none) continue;
        // The pt_regs lies above the frame that interrupted it and ends at or
        // below the interrupted sp (a kernel-mode exception frame does not switch
        // stacks; the IST and IRQ entries copy it there too).
        const uint64_t lo = frames[i - 1].sp, hi = f.sp;
        if (hi <= lo || hi - lo > 64 * 1024) continue;
        std::vector<uint8_t> buf(hi - lo + L.size);
        size_t got = mem.read(lo, buf.data(), buf.size());
        for (uint64_t at = 0; at + L.size <= got; at += 8) {
            auto word = [&](Reg r) {
                uint64_t v;
                memcpy(&v, buf.data() + at + *L.at(r), 8);
                return v;
            };
            if (word(Reg::rip) != f.pc || word(Reg::rsp) != f.sp || (word(Reg::cs) & 3) != 0) continue;
            c.regs_addr = lo + at;
            c.regs_frame = i;
            for (unsigned r = 0; r < static_cast<unsigned>(Reg::count); ++r)
                if (auto o = L.off[r]) {
                    uint64_t v;
                    memcpy(&v, buf.data() + at + *o, 8);
                    c.regs.set(static_cast<Reg>(r), v);
                }
            fault_from_pc(mem, f.pc, c);
            return true;
        }
    }
    // The unwind may end at the exception entry itself, when the pc the
    // pt_regs holds is no kernel text (a call or return into freed memory):
    // the pt_regs is then right above that frame's sp.
    if (!frames.empty()) {
        const uint64_t lo = frames.back().sp;
        std::vector<uint8_t> buf(512 + L.size);
        size_t got = mem.read(lo, buf.data(), buf.size());
        for (uint64_t at = 0; at + L.size <= got; at += 8) {
            auto word = [&](Reg r) {
                uint64_t v;
                memcpy(&v, buf.data() + at + *L.at(r), 8);
                return v;
            };
            if (!plausible_kernel_regs(word(Reg::cs), word(Reg::ss), word(Reg::eflags), word(Reg::rip),
                                       word(Reg::rsp), lo + at + L.size))
                continue;
            c.regs_addr = lo + at;
            c.regs_frame = frames.size();
            for (unsigned r = 0; r < static_cast<unsigned>(Reg::count); ++r)
                if (auto o = L.off[r]) {
                    uint64_t v;
                    memcpy(&v, buf.data() + at + *o, 8);
                    c.regs.set(static_cast<Reg>(r), v);
                }
            fault_from_pc(mem, c.regs.get(Reg::rip), c);
            return true;
        }
    }
    c.notes.push_back("no exception pt_regs found on the crashing task's stack");
    return false;
}

}  // namespace kq
