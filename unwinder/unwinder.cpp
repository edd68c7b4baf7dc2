#include "unwinder/unwinder.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "symbols/types.h"

namespace kq {
namespace {

constexpr uint64_t kPage = 4096;

// x86-64 kernel addresses are in the upper canonical half.
bool is_kernel_address(uint64_t a) { return (a >> 47) == 0x1ffff; }


Confidence cap(Confidence c, Confidence limit) { return std::min(c, limit); }

}  // namespace

const char* to_string(StackWord::Where w) {
    switch (w) {
        case StackWord::Where::frame: return "frame";
        case StackWord::Where::live: return "live";
        case StackWord::Where::stale: return "stale";
    }
    return "?";
}

PtRegsLayout PtRegsLayout::from_types(Types& t) {
    static const std::pair<Reg, const char*> names[] = {
        {Reg::r15, "r15"}, {Reg::r14, "r14"}, {Reg::r13, "r13"}, {Reg::r12, "r12"}, {Reg::rbp, "bp"},
        {Reg::rbx, "bx"},  {Reg::r11, "r11"}, {Reg::r10, "r10"}, {Reg::r9, "r9"},   {Reg::r8, "r8"},
        {Reg::rax, "ax"},  {Reg::rcx, "cx"},  {Reg::rdx, "dx"},  {Reg::rsi, "si"},  {Reg::rdi, "di"},
        {Reg::orig_rax, "orig_ax"}, {Reg::rip, "ip"}, {Reg::cs, "cs"}, {Reg::eflags, "flags"},
        {Reg::rsp, "sp"},  {Reg::ss, "ss"},
    };
    PtRegsLayout l;
    l.size = static_cast<uint32_t>(t.size_or_throw("pt_regs"));
    for (auto [r, n] : names)
        if (auto o = t.offset("pt_regs", n)) l.off[static_cast<unsigned>(r)] = static_cast<uint32_t>(*o);
    if (!l.valid()) throw Error("struct pt_regs in DWARF lacks ip, sp or cs");
    return l;
}

UnwindStart UnwindStart::from(const Thread& t) {
    UnwindStart s;
    s.regs = t.regs;
    s.pc_exact = t.on_cpu;
    s.stack_base = t.stack_base;
    s.stack_size = t.stack_size;
    s.cpu = t.cpu;
    s.on_cpu = t.on_cpu;
    return s;
}

Unwinder::Unwinder(MemorySource& mem, MemorySource& code, const CodeMap& map, OrcIndex orc, PtRegsLayout regs,
                   UnwinderOptions opts)
    : mem_(mem), code_(code), map_(map), orc_(std::move(orc)), regs_(regs), opts_(opts), prologue_(code, &map) {}

Unwinder::~Unwinder() = default;

void Unwinder::add_cfi(std::string path, uint64_t slide) { cfi_.push_back({std::move(path), slide, nullptr, false}); }

std::optional<CfiRow> Unwinder::cfi_row(uint64_t pc) {
    for (auto& c : cfi_) {
        if (!c.tried) {
            c.tried = true;
            try {
                c.cfi = DwarfCfi::open(c.path, c.slide);
            } catch (const Error&) {
                // No CFI there: the method just does not apply.
            }
        }
        if (c.cfi && c.cfi->covers(pc)) return c.cfi->at(pc);
    }
    return std::nullopt;
}

std::optional<CallSite> Unwinder::validate_return_address(uint64_t w) {
    if (!is_kernel_address(w) || (!map_.is_text(w) && !orc_.covers(w))) return std::nullopt;
    if (auto it = calls_.find(w); it != calls_.end()) return it->second;
    // Bounded: scans of many stacks see many distinct text words.
    if (calls_.size() >= (1u << 20)) calls_.clear();
    return calls_[w] = call_ending_at(dis_, code_, w, &map_);
}

ReturnCheck Unwinder::check_return_address(uint64_t w, uint64_t callee_pc) {
    auto c = validate_return_address(w);
    if (!c) return ReturnCheck::not_after_call;
    if (!c->direct) return ReturnCheck::indirect_call;
    if (map_.thunk_at(c->target) != ThunkKind::none) return ReturnCheck::call_to_thunk;
    auto f = map_.function_at(callee_pc);
    if (f && f->start == c->target) return ReturnCheck::call_to_callee;
    return ReturnCheck::call_elsewhere;
}

// One unwind (or scan) of one thread: its stacks, a page cache of their
// memory, and the steps.
class Unwinder::Run {
public:
    Run(Unwinder& u, const UnwindStart& s) : u_(u), s_(s) {
        if (s.stack_size) stacks_.push_back({s.stack_base, s.stack_size, StackKind::task, s.cpu, "task"});
        if (s.on_cpu)
            for (const auto& r : u.cpu_stacks_)
                if (r.cpu == s.cpu) stacks_.push_back(r);
        left_.assign(stacks_.size(), false);
    }

    const std::vector<StackRange>& stacks() const { return stacks_; }

    int stack_of(uint64_t a, uint64_t len = 8) const {
        for (size_t i = 0; i < stacks_.size(); ++i)
            if (stacks_[i].contains(a, len)) return static_cast<int>(i);
        return -1;
    }

    // Reads stack memory: only on one of the thread's stacks.
    enum class Read { ok, off_stack, unreadable };
    Read read(uint64_t a, void* out, size_t len) {
        if (stack_of(a, len) < 0) return Read::off_stack;
        auto* o = static_cast<uint8_t*>(out);
        while (len) {
            uint64_t page = a & ~(kPage - 1);
            const uint8_t* p = page_data(page);
            if (!p) return Read::unreadable;
            size_t n = std::min<size_t>(len, kPage - (a - page));
            memcpy(o, p + (a - page), n);
            o += n;
            a += n;
            len -= n;
        }
        return Read::ok;
    }

    std::vector<Frame> unwind();
    std::vector<StackWord> scan(const std::vector<Frame>& frames);

private:
    struct State {
        uint64_t pc = 0, sp = 0;
        std::optional<uint64_t> bp;
        bool exact = false;  // pc is not a return address
        RegisterSet regs;    // registers known in this frame
        bool full = false;   // regs came from a full pt_regs or a CPU
        int stack = -1;
    };
    struct Step {
        bool ok = false;
        StopReason stop = StopReason::none;
        std::string detail;
        State next;
        UnwindMethod method = UnwindMethod::orc;
        Confidence confidence = Confidence::high;
        uint64_t cfa = 0;
        bool user = false;  // crossed a pt_regs into user mode
        bool soft = false;  // the method did not apply: try the next one
    };

    const uint8_t* page_data(uint64_t page) {
        auto it = pages_.find(page);
        if (it != pages_.end()) return it->second.empty() ? nullptr : it->second.data();
        std::vector<uint8_t> buf(kPage);
        if (u_.mem_.read(page, buf.data(), kPage) != kPage) buf.clear();
        auto& slot = pages_[page];
        slot = std::move(buf);
        return slot.empty() ? nullptr : slot.data();
    }

    static Step stop(StopReason r, std::string d) {
        Step s;
        s.stop = r;
        s.detail = std::move(d);
        return s;
    }
    static Step soft(std::string d) {
        Step s;
        s.soft = true;
        s.detail = std::move(d);
        return s;
    }
    // A stack word the step needs: a read failure is a stop, not a fallback.
    std::optional<uint64_t> word(uint64_t a, Step& fail, const char* what) {
        uint64_t v;
        switch (read(a, &v, 8)) {
            case Read::ok: return v;
            case Read::off_stack: fail = stop(StopReason::sp_outside_stack, std::string(what) + " at " + hex_text(a) + " is on no stack of this thread"); break;
            case Read::unreadable: fail = stop(StopReason::unreadable, std::string(what) + " at " + hex_text(a) + " is not in the dump"); break;
        }
        return std::nullopt;
    }

    Step step_orc(const State& st);
    Step step_cfi(const State& st);
    Step step_prologue(const State& st);
    Step step_frame_pointer(const State& st);
    Step step_scan(const State& st);
    Step call_frame(const State& st, uint64_t cfa, std::optional<uint64_t> bp, UnwindMethod m);

    Unwinder& u_;
    const UnwindStart& s_;
    std::vector<StackRange> stacks_;
    std::vector<bool> left_;
    std::unordered_map<uint64_t, std::vector<uint8_t>> pages_;
};

Unwinder::Run::Step Unwinder::Run::call_frame(const State& st, uint64_t cfa, std::optional<uint64_t> bp,
                                              UnwindMethod m) {
    Step r;
    auto ra = word(cfa - 8, r, "return address");
    if (!ra) return r;
    r.ok = true;
    r.method = m;
    r.cfa = cfa;
    r.next.pc = *ra;
    r.next.sp = cfa;
    r.next.bp = bp;
    r.next.exact = false;
    r.next.regs.set(Reg::rip, *ra);
    r.next.regs.set(Reg::rsp, cfa);
    if (bp) r.next.regs.set(Reg::rbp, *bp);
    return r;
}

Unwinder::Run::Step Unwinder::Run::step_orc(const State& st) {
    if (!u_.opts_.orc) return soft("ORC off");
    uint64_t lookup = st.exact ? st.pc : st.pc - 1;
    const OrcTable* table = nullptr;
    auto hit = u_.orc_.find(lookup, &table);
    if (!hit) return soft("no ORC entry for " + hex_text(lookup));
    const OrcEntry& e = hit->entry;
    if (e.type == OrcType::end_of_stack) return stop(StopReason::end_of_stack, "ORC end entry at " + hex_text(hit->ip));
    if (e.type == OrcType::undefined) return soft("ORC entry at " + hex_text(hit->ip) + " has no information");

    Step fail;
    // The caller's sp (the CFA, or the pt_regs address for regs types).
    uint64_t sp = 0;
    auto reg = [&](Reg r) -> std::optional<uint64_t> {
        if (st.regs.has(r)) return st.regs.get(r);
        return std::nullopt;
    };
    switch (e.sp_reg) {
        case OrcReg::sp: sp = st.sp + e.sp_offset; break;
        case OrcReg::bp:
            if (!st.bp) return soft("ORC needs rbp at " + hex_text(st.pc) + ", unknown");
            sp = *st.bp + e.sp_offset;
            break;
        case OrcReg::sp_indirect: {
            auto v = word(st.sp, fail, "indirect sp");
            if (!v) return fail;
            sp = *v + e.sp_offset;
            break;
        }
        case OrcReg::bp_indirect: {
            if (!st.bp) return soft("ORC needs rbp at " + hex_text(st.pc) + ", unknown");
            auto v = word(*st.bp + e.sp_offset, fail, "indirect bp");
            if (!v) return fail;
            sp = *v;
            break;
        }
        case OrcReg::r10:
        case OrcReg::r13:
        case OrcReg::di:
        case OrcReg::dx: {
            Reg r = e.sp_reg == OrcReg::r10 ? Reg::r10 : e.sp_reg == OrcReg::r13 ? Reg::r13
                  : e.sp_reg == OrcReg::di  ? Reg::rdi : Reg::rdx;
            auto v = reg(r);
            if (!v) return soft(std::string("ORC needs ") + to_string(e.sp_reg) + " at " + hex_text(st.pc) + ", unknown");
            sp = *v;
            break;
        }
        default:
            return soft(std::string("ORC entry at ") + hex_text(hit->ip) + " has sp base " + to_string(e.sp_reg));
    }

    Step r;
    r.method = UnwindMethod::orc;
    r.cfa = sp;
    State& n = r.next;
    const PtRegsLayout& L = u_.regs_;
    switch (e.type) {
        case OrcType::call: {
            auto ra = word(sp - 8, fail, "return address");
            if (!ra) return fail;
            n.pc = *ra;
            n.sp = sp;
            n.exact = false;
            n.regs.set(Reg::rip, n.pc);
            n.regs.set(Reg::rsp, n.sp);
            n.full = false;
            break;
        }
        case OrcType::regs: {
            if (!L.valid()) return stop(StopReason::bad_unwind_info, "pt_regs layout unknown");
            std::vector<uint8_t> buf(L.size);
            switch (read(sp, buf.data(), buf.size())) {
                case Read::ok: break;
                case Read::off_stack: return stop(StopReason::sp_outside_stack, "pt_regs at " + hex_text(sp) + " is on no stack of this thread");
                case Read::unreadable: return stop(StopReason::unreadable, "pt_regs at " + hex_text(sp) + " is not in the dump");
            }
            for (unsigned i = 0; i < static_cast<unsigned>(Reg::count); ++i)
                if (auto o = L.off[i]; o && *o + 8 <= buf.size()) {
                    uint64_t v;
                    memcpy(&v, buf.data() + *o, 8);
                    n.regs.set(static_cast<Reg>(i), v);
                }
            n.pc = n.regs.get(Reg::rip);
            n.sp = n.regs.get(Reg::rsp);
            n.exact = true;
            n.full = true;
            break;
        }
        case OrcType::regs_partial: {
            if (!L.valid()) return stop(StopReason::bad_unwind_info, "pt_regs layout unknown");
            // sp points at the iret frame: pt_regs.ip. The registers before
            // it were not saved here; the kernel reads them from the previous
            // full pt_regs, if any.
            uint64_t base = sp - *L.at(Reg::rip);
            if (st.full) n.regs = st.regs;
            for (Reg rr : {Reg::rip, Reg::cs, Reg::eflags, Reg::rsp, Reg::ss}) {
                auto o = L.at(rr);
                if (!o) continue;
                auto v = word(base + *o, fail, "iret frame");
                if (!v) return fail;
                n.regs.set(rr, *v);
            }
            n.pc = n.regs.get(Reg::rip);
            n.sp = n.regs.get(Reg::rsp);
            n.exact = true;
            n.full = false;
            break;
        }
        default:
            return stop(StopReason::bad_unwind_info, "ORC entry type " + std::to_string(e.raw_type));
    }
    if ((e.type == OrcType::regs || e.type == OrcType::regs_partial) && (n.regs.get(Reg::cs) & 3)) {
        r.user = true;
        r.ok = true;
        r.detail = "pt_regs at " + hex_text(sp) + " return to user pc " + hex_text(n.pc);
        return r;
    }

    // The caller's rbp.
    switch (e.bp_reg) {
        case OrcReg::undefined:
            if (e.type == OrcType::call) n.bp = st.bp;
            else if (n.regs.has(Reg::rbp)) n.bp = n.regs.get(Reg::rbp);
            else n.bp = st.bp;
            break;
        case OrcReg::prev_sp: {
            auto v = word(sp + e.bp_offset, fail, "saved rbp");
            if (!v) return fail;
            n.bp = *v;
            break;
        }
        case OrcReg::bp: {
            if (!st.bp) return soft("ORC needs rbp at " + hex_text(st.pc) + " to restore rbp, unknown");
            auto v = word(*st.bp + e.bp_offset, fail, "saved rbp");
            if (!v) return fail;
            n.bp = *v;
            break;
        }
        default:
            return stop(StopReason::bad_unwind_info,
                        std::string("ORC entry at ") + hex_text(hit->ip) + " has bp base " + to_string(e.bp_reg));
    }
    if (n.bp) n.regs.set(Reg::rbp, *n.bp);
    r.ok = true;
    r.confidence = Confidence::high;  // lowered below if no call precedes the return address
    return r;
}

Unwinder::Run::Step Unwinder::Run::step_cfi(const State& st) {
    if (!u_.opts_.dwarf_cfi || u_.cfi_.empty()) return soft("no DWARF CFI");
    uint64_t lookup = st.exact ? st.pc : st.pc - 1;
    auto row = u_.cfi_row(lookup);
    if (!row) return soft("no DWARF CFI for " + hex_text(lookup));
    uint64_t cfa;
    switch (row->cfa_reg) {
        case static_cast<uint16_t>(DwarfReg::rsp): cfa = st.sp + row->cfa_offset; break;
        case static_cast<uint16_t>(DwarfReg::rbp):
            if (!st.bp) return soft("DWARF CFI needs rbp, unknown");
            cfa = *st.bp + row->cfa_offset;
            break;
        default: {
            // DWARF numbers 8..15 are r8..r15 (DRAP uses r10).
            static const Reg dw[] = {Reg::rax, Reg::rdx, Reg::rcx, Reg::rbx, Reg::rsi, Reg::rdi, Reg::rbp, Reg::rsp,
                                     Reg::r8,  Reg::r9,  Reg::r10, Reg::r11, Reg::r12, Reg::r13, Reg::r14, Reg::r15};
            if (row->cfa_reg >= 16 || !st.regs.has(dw[row->cfa_reg]))
                return soft("DWARF CFI needs register " + std::to_string(row->cfa_reg) + ", unknown");
            cfa = st.regs.get(dw[row->cfa_reg]) + row->cfa_offset;
        }
    }
    if (!row->ra_offset) return stop(StopReason::end_of_stack, "DWARF CFI: return address undefined at " + hex_text(lookup));
    Step fail;
    std::optional<uint64_t> bp;
    switch (row->bp) {
        case CfiRow::Bp::same: bp = st.bp; break;
        case CfiRow::Bp::saved: {
            auto v = word(cfa + row->bp_offset, fail, "saved rbp");
            if (!v) return fail;
            bp = *v;
            break;
        }
        default: break;
    }
    auto ra = word(cfa + *row->ra_offset, fail, "return address");
    if (!ra) return fail;
    Step r = call_frame(st, cfa, bp, UnwindMethod::dwarf_cfi);
    if (!r.ok) return r;
    r.next.pc = *ra;
    r.next.regs.set(Reg::rip, *ra);
    r.confidence = Confidence::high;  // lowered below if no call precedes the return address
    return r;
}

Unwinder::Run::Step Unwinder::Run::step_prologue(const State& st) {
    if (!u_.opts_.prologue) return soft("prologue analysis off");
    auto rule = u_.prologue_.at(st.pc);
    if (!rule && !st.exact) {
        // A return address after a call to a noreturn function may lie past
        // the function's end: analyze at the call instead.
        if (auto c = u_.validate_return_address(st.pc)) rule = u_.prologue_.at(c->addr);
    }
    if (!rule) return soft("prologue analysis found nothing at " + hex_text(st.pc));
    uint64_t cfa;
    Step fail;
    if (rule->base == CfaRule::Base::bp) {
        if (!st.bp) return soft("prologue analysis needs rbp, unknown");
        cfa = *st.bp + rule->offset;
    } else if (rule->base == CfaRule::Base::sp_indirect) {
        auto v = word(st.sp, fail, "indirect sp");
        if (!v) return fail;
        cfa = *v + rule->offset;
    } else {
        cfa = st.sp + rule->offset;
    }
    std::optional<uint64_t> bp = st.bp;
    if (rule->bp_saved) {
        auto v = word(cfa + *rule->bp_saved, fail, "saved rbp");
        if (!v) return fail;
        bp = *v;
    }
    Step r = call_frame(st, cfa, bp, UnwindMethod::prologue);
    if (!r.ok) return r.stop == StopReason::unreadable ? r : soft(r.detail);
    if (!u_.validate_return_address(r.next.pc)) return soft("prologue analysis: no return address at CFA-8");
    r.confidence = Confidence::medium;
    return r;
}

Unwinder::Run::Step Unwinder::Run::step_frame_pointer(const State& st) {
    if (!u_.opts_.frame_pointers) return soft("frame pointers off");
    if (!st.bp || *st.bp < st.sp || stack_of(*st.bp, 16) != st.stack) return soft("rbp is not a frame pointer");
    uint64_t fp[2];
    if (read(*st.bp, fp, 16) != Read::ok) return soft("frame pointer not readable");
    if (!u_.validate_return_address(fp[1])) return soft("no return address above rbp");
    Step r = call_frame(st, *st.bp + 16, fp[0], UnwindMethod::frame_pointer);
    r.confidence = Confidence::medium;
    return r;
}

Unwinder::Run::Step Unwinder::Run::step_scan(const State& st) {
    if (!u_.opts_.scan_fallback) return soft("stack scan off");
    if (st.stack < 0) return soft("no stack to scan");
    const StackRange& sr = stacks_[st.stack];
    uint64_t top = sr.base + sr.size;
    // The caller of the current function is the best candidate: a direct
    // call whose target is the function's start (or an indirect call).
    std::optional<uint64_t> fstart;
    if (auto f = u_.map_.function_at(st.exact ? st.pc : st.pc - 1)) fstart = f->start;
    std::optional<uint64_t> any;
    for (uint64_t a = (st.sp + 7) & ~7ull; a + 8 <= top; a += 8) {
        uint64_t w;
        Read rd = read(a, &w, 8);
        if (rd == Read::unreadable) {
            if (any) break;
            return stop(StopReason::unreadable, "stack page " + hex_text(a & ~(kPage - 1)) + " is not in the dump");
        }
        if (rd != Read::ok) break;
        auto c = u_.validate_return_address(w);
        if (!c) continue;
        bool fits = !c->direct || !fstart || c->target == *fstart ||
                    u_.map_.thunk_at(c->target) != ThunkKind::none;
        if (fits) {
            any = a;
            break;
        }
        if (!any) any = a;
    }
    if (!any) return soft("no return address on the stack above " + hex_text(st.sp));
    Step r = call_frame(st, *any + 8, st.bp, UnwindMethod::stack_scan);
    r.confidence = Confidence::low;
    return r;
}

std::vector<Frame> Unwinder::Run::unwind() {
    std::vector<Frame> frames;
    const RegisterSet& regs = s_.regs;
    Frame f0;
    f0.method = UnwindMethod::initial;
    f0.confidence = Confidence::high;
    if (!regs.has(Reg::rip) || !regs.has(Reg::rsp)) {
        f0.pc = regs.get(Reg::rip);
        f0.sp = regs.get(Reg::rsp);
        f0.stop = StopReason::no_unwind_info;
        f0.stop_detail = "no initial pc/sp";
        frames.push_back(f0);
        return frames;
    }
    State st;
    st.pc = regs.get(Reg::rip);
    st.sp = regs.get(Reg::rsp);
    if (regs.has(Reg::rbp)) st.bp = regs.get(Reg::rbp);
    st.exact = s_.pc_exact ||
               std::find(u_.exact_pcs_.begin(), u_.exact_pcs_.end(), st.pc) != u_.exact_pcs_.end();
    st.regs = regs;
    st.full = s_.on_cpu;
    st.stack = stack_of(st.sp);
    f0.pc = st.pc;
    f0.sp = st.sp;
    f0.return_address = !st.exact;
    f0.stack = st.stack >= 0 ? stacks_[st.stack].kind : StackKind::unknown;
    if (!is_kernel_address(st.pc) || (s_.on_cpu && regs.has(Reg::cs) && (regs.get(Reg::cs) & 3))) {
        f0.stop = StopReason::user_mode;
        f0.stop_detail = "the CPU was in user mode";
        frames.push_back(f0);
        return frames;
    }
    if (st.stack < 0) {
        f0.stop = StopReason::sp_outside_stack;
        f0.stop_detail = "sp " + hex_text(st.sp) + " is on no stack of this thread";
        frames.push_back(f0);
        return frames;
    }
    frames.push_back(f0);

    Confidence ceiling = Confidence::high;
    while (true) {
        Frame& cur = frames.back();
        if (frames.size() >= u_.opts_.max_frames) {
            cur.stop = StopReason::max_frames;
            cur.stop_detail = std::to_string(u_.opts_.max_frames) + " frames";
            break;
        }
        std::string why;
        Step r = step_orc(st);
        for (auto next : {&Run::step_cfi, &Run::step_prologue, &Run::step_frame_pointer, &Run::step_scan}) {
            if (!r.soft) break;
            if (!why.empty()) why += "; ";
            why += r.detail;
            r = (this->*next)(st);
        }
        if (r.soft) {
            if (!why.empty()) why += "; ";
            why += r.detail;
            cur.stop = StopReason::no_unwind_info;
            cur.stop_detail = why;
            break;
        }
        if (!r.ok) {
            cur.stop = r.stop;
            cur.stop_detail = r.detail;
            break;
        }
        cur.cfa = r.cfa;
        if (r.user) {
            cur.stop = StopReason::user_mode;
            cur.stop_detail = r.detail;
            break;
        }
        State& n = r.next;
        if (!is_kernel_address(n.pc) || (!u_.map_.is_text(n.pc) && !u_.orc_.covers(n.pc))) {
            cur.stop = StopReason::bad_pc;
            cur.stop_detail = std::string(to_string(r.method)) + " gave pc " + hex_text(n.pc);
            break;
        }
        n.stack = stack_of(n.sp);
        if (n.stack < 0) {
            cur.stop = StopReason::sp_outside_stack;
            cur.stop_detail = std::string(to_string(r.method)) + " gave sp " + hex_text(n.sp) + ", on no stack of this thread";
            break;
        }
        if (n.stack == st.stack) {
            if (n.sp <= st.sp) {
                cur.stop = StopReason::sp_not_increasing;
                cur.stop_detail = std::string(to_string(r.method)) + " gave sp " + hex_text(n.sp) + " <= " + hex_text(st.sp);
                break;
            }
        } else {
            if (left_[n.stack]) {
                cur.stop = StopReason::stack_revisited;
                cur.stop_detail = "back to the " + stacks_[n.stack].name + " stack at " + hex_text(n.sp);
                break;
            }
            left_[st.stack] = true;
        }
        if (r.method == UnwindMethod::stack_scan || r.method == UnwindMethod::prologue ||
            r.method == UnwindMethod::frame_pointer)
            ceiling = cap(ceiling, Confidence::medium);
        Frame f;
        f.pc = n.pc;
        f.sp = n.sp;
        f.method = r.method;
        f.return_address = !n.exact;
        if (f.return_address) {
            f.check = u_.check_return_address(n.pc, cur.lookup_pc());
            // Unwind data that lands on a word no call precedes (a pushed
            // label, a trampoline, or bad data) is less sure.
            if (f.check == ReturnCheck::not_after_call) r.confidence = cap(r.confidence, Confidence::medium);
        }
        f.confidence = cap(r.confidence, ceiling);
        f.stack = stacks_[n.stack].kind;
        frames.push_back(f);
        st = n;
    }
    return frames;
}

std::vector<StackWord> Unwinder::Run::scan(const std::vector<Frame>& frames) {
    std::vector<StackWord> out;
    // Lowest frame sp on each stack: the live part starts there.
    std::vector<std::optional<uint64_t>> low(stacks_.size());
    for (const auto& f : frames) {
        int i = stack_of(f.sp);
        if (i >= 0 && (!low[i] || f.sp < *low[i])) low[i] = f.sp;
    }
    for (size_t si = 0; si < stacks_.size(); ++si) {
        const StackRange& sr = stacks_[si];
        for (uint64_t page = sr.base & ~(kPage - 1); page < sr.base + sr.size; page += kPage) {
            const uint8_t* p = page_data(page);
            if (!p) continue;
            uint64_t from = std::max(page, sr.base), to = std::min(page + kPage, sr.base + sr.size);
            for (uint64_t a = (from + 7) & ~7ull; a + 8 <= to; a += 8) {
                uint64_t w;
                memcpy(&w, p + (a - page), 8);
                auto c = u_.validate_return_address(w);
                if (!c) continue;
                StackWord sw;
                sw.slot = a;
                sw.value = w;
                sw.call = *c;
                sw.stack = sr.kind;
                sw.where = low[si] && a >= *low[si] ? StackWord::Where::live : StackWord::Where::stale;
                for (size_t k = 1; k < frames.size(); ++k)
                    if (frames[k].return_address && frames[k].sp - 8 == a && frames[k].pc == w)
                        sw.where = StackWord::Where::frame;
                out.push_back(sw);
            }
        }
    }
    return out;
}

std::vector<Frame> Unwinder::unwind(const UnwindStart& start) {
    Run r(*this, start);
    return r.unwind();
}

std::vector<StackWord> Unwinder::scan(const UnwindStart& start, const std::vector<Frame>& frames) {
    Run r(*this, start);
    return r.scan(frames);
}

}  // namespace kq
