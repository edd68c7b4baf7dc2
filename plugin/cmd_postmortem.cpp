// kmod postmortem: what crashed the kernel of this dump. The crash context
// (kernel/linux/crash_context), and for a crash in a hole of the module area
// the vanished module, its function, the path and the missing cleanup
// (kernel/linux/crash_attribution).
#include <cstdio>
#include <filesystem>
#include <set>

#include "kernel/linux/crash_attribution.h"
#include "kernel/linux/crash_context.h"
#include "kernel/linux/printk.h"
#include "plugin/commands.h"
#include "plugin/json.h"
#include "plugin/session.h"
#include "plugin/stack.h"

namespace kq {
namespace {

struct Report {
    KernelLog log;
    bool log_read = false;
    std::string log_error;
    CrashContext ctx;
    Stack stack;
    Attribution at;
};

std::string symbol_of(const Stack& st, size_t i) {
    if (i >= st.frames.size()) return "";
    const StackFrame& f = st.frames[i];
    return f.symbol.empty() ? "" : f.symbol + "+" + hex_addr(f.offset) + (f.module.empty() || f.module == "vmlinux" ? "" : " [" + f.module + "]");
}

// Directories of the loaded modules' .ko files: searched after --modules-dir.
std::vector<std::string> ko_dirs(const LinuxSystem& sys, const Args& args) {
    std::vector<std::string> dirs = args.all("--modules-dir");
    std::set<std::string> seen(dirs.begin(), dirs.end());
    for (const auto& m : sys.modules())
        if (!m.ko_path.empty())
            if (std::string d = std::filesystem::path(m.ko_path).parent_path().string(); seen.insert(d).second)
                dirs.push_back(d);
    return dirs;
}

// "kq_leaky_timer_fn+0x0"
std::string symbol(const Attribution& a) {
    char off[24];
    snprintf(off, sizeof off, "0x%llx", static_cast<unsigned long long>(a.offset));
    return a.function + "+" + off;
}

std::string summary(const Report& r) {
    const Attribution& a = r.at;
    switch (a.kind) {
        case Attribution::Kind::no_crash:
            return "no crash: the kernel did not panic and its log holds no oops";
        case Attribution::Kind::unload: {
            std::string s = "unload crash: ";
            s += a.path.kind.empty()         ? "the kernel reached"
                 : a.path.kind == "thread" ? "a kthread ran on in"
                 : a.path.kind == "work"   ? "a work item called into"
                                           : "a " + a.path.kind + " called into";
            s += " the memory of " + (a.module.empty() ? std::string("a module that is gone") : "module " + a.module + ", which is gone");
            if (!a.function.empty()) s += ", at " + symbol(a);
            if (!a.path.missing_cleanup.empty()) s += "; its exit should have called " + a.path.missing_cleanup;
            return s;
        }
        case Attribution::Kind::loaded_module:
            return "not an unload crash: the fault is in module " + a.module + ", which is loaded" +
                   (a.function.empty() ? "" : ", at " + symbol(a));
        case Attribution::Kind::kernel:
            return "not an unload crash: the faulting pc and address are in no hole of the module area";
    }
    return "";
}

void json_report(const Report& r, const LinuxSystem& sys, Json& j) {
    const CrashContext& c = r.ctx;
    const Attribution& a = r.at;
    j.begin_object()
        .field("kind", std::string(to_string(a.kind)))
        .field("unload_crash", a.kind == Attribution::Kind::unload)
        .field("summary", summary(r))
        .field("panicked", c.panicked);
    j.key("panic_cpu");
    if (c.panicked) j.value(c.panic_cpu); else j.null();
    j.field("panic_message", c.oops.panic);

    j.key("context").begin_object();
    j.key("task");
    if (c.task)
        j.begin_object().field("tid", c.task->id).field("pid", c.task->id >= kIdleThreadIdBase ? int64_t(0) : c.task->id).field("comm", c.task->name).field_addr("task", c.task->task).field("cpu", c.task->cpu).end_object();
    else
        j.null();
    j.field("bug", c.oops.bug).field("oops", c.oops.oops).field("access", c.oops.access).field("rip_line", c.oops.rip);
    j.key("fault_address");
    if (c.fault_address) j.addr(*c.fault_address); else j.null();
    j.field("fault_address_source", c.fault_address_source);
    j.key("pt_regs");
    if (c.regs_addr) j.addr(c.regs_addr); else j.null();
    if (c.regs_addr) {
        j.field_addr("pc", c.regs.get(Reg::rip)).field_addr("sp", c.regs.get(Reg::rsp));
        j.field("pc_symbol", symbol_of(r.stack, c.regs_frame));
        if (c.regs_frame < r.stack.frames.size())
            j.field("stack", std::string(to_string(r.stack.frames[c.regs_frame].frame.stack)));
        static const std::pair<Reg, const char*> regs[] = {
            {Reg::rax, "rax"}, {Reg::rbx, "rbx"}, {Reg::rcx, "rcx"}, {Reg::rdx, "rdx"}, {Reg::rsi, "rsi"},
            {Reg::rdi, "rdi"}, {Reg::rbp, "rbp"}, {Reg::rsp, "rsp"}, {Reg::r8, "r8"},   {Reg::r9, "r9"},
            {Reg::r10, "r10"}, {Reg::r11, "r11"}, {Reg::r12, "r12"}, {Reg::r13, "r13"}, {Reg::r14, "r14"},
            {Reg::r15, "r15"}, {Reg::rip, "rip"}, {Reg::eflags, "eflags"}, {Reg::cs, "cs"}, {Reg::ss, "ss"}};
        j.key("registers").begin_object();
        for (auto [reg, n] : regs) j.field_addr(n, c.regs.get(reg));
        j.end_object();
    }
    j.field("taint", c.taint).field("last_unloaded_module", c.last_unloaded_module);
    j.key("oops_lines").begin_array();
    for (const auto& l : c.oops.lines) j.value(l);
    j.end_array();
    j.end_object();

    j.key("frames").begin_array();
    for (size_t k = 0; k < r.stack.frames.size(); ++k) frame_json(j, k, r.stack.frames[k], "");
    j.end_array();

    j.key("attribution").begin_object();
    j.key("module");
    if (a.module.empty()) j.null(); else j.value(a.module);
    j.key("module_sources").begin_array();
    for (const auto& s : a.module_sources) j.value(s);
    j.end_array();
    j.key("function");
    if (a.function.empty()) j.null(); else j.value(a.function);
    j.field("offset", a.offset);
    j.key("symbol");
    if (a.function.empty()) j.null(); else j.value(symbol(a));
    j.field("confidence", a.confidence);
    j.key("module_area").begin_object().field_addr("start", a.area_start).field_addr("end", a.area_end).end_object();
    j.key("hole");
    if (a.kind == Attribution::Kind::unload)
        j.begin_object().field_addr("start", a.hole_start).field_addr("end", a.hole_end).end_object();
    else
        j.null();
    j.key("ko");
    if (a.match) {
        j.begin_object()
            .field("module", a.match->module)
            .field("path", a.match->ko_path)
            .field_addr("load_base", a.match->base)
            .field("size", a.match->size)
            .field("explained", static_cast<uint64_t>(a.match->explained))
            .field("exact", static_cast<uint64_t>(a.match->exact))
            .field("total", static_cast<uint64_t>(a.match->total))
            .field("other_bases", static_cast<uint64_t>(a.match->alternatives))
            .end_object();
    } else {
        j.null();
    }
    j.field("candidates_tried", static_cast<uint64_t>(a.candidates_tried));
    j.key("searched").begin_array();
    for (const auto& s : a.searched) j.value(s);
    j.end_array();
    j.key("stale").begin_array();
    for (const auto& s : a.stale) {
        j.begin_object().field("what", s.what).field_addr("value", s.value);
        j.key("where");
        if (s.where) j.addr(s.where); else j.null();
        j.field("expect", std::string(to_string(s.expect)));
        j.key("explained");
        if (s.explained.empty()) j.null(); else j.value(s.explained);
        j.end_object();
    }
    j.end_array();
    j.key("log_lines").begin_array();
    for (const auto& l : a.log_lines) j.value(l);
    j.end_array();
    j.end_object();

    j.key("path");
    if (a.kind == Attribution::Kind::unload) {
        const CrashPath& p = a.path;
        j.begin_object();
        j.key("kind");
        if (p.kind.empty()) j.null(); else j.value(p.kind);
        j.field("caller", p.caller);
        j.key("object");
        if (p.object) j.addr(p.object); else j.null();
        j.field("object_type", p.object_type);
        j.key("function");
        if (p.function) j.addr(p.function); else j.null();
        j.field("chain", p.chain).field("missing_cleanup", p.missing_cleanup).field("detail", p.detail).end_object();
    } else {
        j.null();
    }
    j.key("still_registered").begin_array();
    for (const auto& s : a.still_registered) j.value(s);
    j.end_array();
    j.key("notes").begin_array();
    for (const auto& n : c.notes) j.value(n);
    for (const auto& n : a.notes) j.value(n);
    if (!r.log_read) j.value("kernel log: " + r.log_error);
    j.end_array();
    j.end_object();
}

std::string text_report(const Report& r) {
    const CrashContext& c = r.ctx;
    const Attribution& a = r.at;
    std::string o = summary(r) + "\n\n";
    o += "Crash context\n";
    if (c.panicked) o += "  panic on CPU " + std::to_string(c.panic_cpu) + (c.oops.panic.empty() ? "" : ": " + c.oops.panic) + "\n";
    else o += "  no panic recorded (panic_cpu holds no CPU)\n";
    if (c.task)
        o += "  " + (c.task->id >= kIdleThreadIdBase ? "the idle task" : "task " + std::to_string(c.task->id)) + " (" +
             c.task->name + ") on CPU " + std::to_string(c.task->cpu) + "\n";
    if (!c.oops.bug.empty()) o += "  " + c.oops.bug + (c.oops.access.empty() ? "" : " (" + c.oops.access + ")") + "\n";
    if (!c.oops.oops.empty()) o += "  " + c.oops.oops + "\n";
    if (c.regs_addr) {
        o += "  oops registers: pt_regs at " + hex_addr(c.regs_addr) + ", pc " + hex_addr(c.regs.get(Reg::rip));
        if (std::string s = symbol_of(r.stack, c.regs_frame); !s.empty()) o += " " + s;
        o += ", sp " + hex_addr(c.regs.get(Reg::rsp));
        if (c.regs_frame < r.stack.frames.size() && r.stack.frames[c.regs_frame].frame.stack == StackKind::irq)
            o += " (on the IRQ stack: interrupt context)";
        o += "\n";
    }
    if (c.fault_address) o += "  faulting address " + hex_addr(*c.fault_address) + " (from the " + c.fault_address_source + ")\n";
    if (!c.taint.empty()) o += "  taint: " + c.taint + "\n";
    if (!c.last_unloaded_module.empty()) o += "  last unloaded module: " + c.last_unloaded_module + "\n";

    if (a.kind == Attribution::Kind::unload || a.kind == Attribution::Kind::loaded_module) {
        o += "\nAttribution\n";
        if (a.kind == Attribution::Kind::unload)
            o += "  module area " + hex_addr(a.area_start) + "-" + hex_addr(a.area_end) + "; the stale address lies in the hole " +
                 hex_addr(a.hole_start) + "-" + hex_addr(a.hole_end) + " where no live module is mapped\n";
        std::string src;
        for (const auto& s : a.module_sources) src += (src.empty() ? "" : ", ") + s;
        o += "  module: " + (a.module.empty() ? std::string("unknown") : a.module) + (src.empty() ? "" : " (" + src + ")") + "\n";
        o += "  function: " + (a.function.empty() ? std::string("unknown") : symbol(a)) +
             (a.confidence.empty() ? "" : ", confidence " + a.confidence) + "\n";
        if (a.match)
            o += "  " + a.match->ko_path + " loaded at " + hex_addr(a.match->base) + " explains " +
                 std::to_string(a.match->explained) + " of " + std::to_string(a.match->total) + " stale addresses (" +
                 std::to_string(a.match->exact) + " exact: function entries, return addresses)\n";
        for (const auto& s : a.stale)
            o += "    " + hex_addr(s.value) + "  " + s.what + (s.where ? " at " + hex_addr(s.where) : "") + " -> " +
                 (s.explained.empty() ? "unexplained" : s.explained) + "\n";
        for (const auto& l : a.log_lines) o += "  log: " + l + "\n";
    }
    if (a.kind == Attribution::Kind::unload) {
        const CrashPath& p = a.path;
        o += "\nPath\n";
        o += "  kind: " + (p.kind.empty() ? std::string("unknown") : p.kind) + (p.caller.empty() ? "" : ", called from " + p.caller) + "\n";
        if (!p.detail.empty()) o += "  " + p.detail + "\n";
        if (!p.missing_cleanup.empty()) o += "  missing cleanup: " + p.missing_cleanup + "\n";
        for (const auto& s : a.still_registered) o += "  still registered: " + s + "\n";
    }
    if (!r.stack.frames.empty()) {
        o += "\nStack of the crashing task\n";
        for (size_t k = 0; k < r.stack.frames.size(); ++k) o += frame_line(k, r.stack.frames[k], k == c.regs_frame && c.regs_addr, true);
    }
    std::vector<std::string> notes = c.notes;
    notes.insert(notes.end(), a.notes.begin(), a.notes.end());
    if (!r.log_read) notes.push_back("kernel log: " + r.log_error);
    if (!notes.empty()) {
        o += "\nNotes\n";
        for (const auto& n : notes) o += "  " + n + "\n";
    }
    return o;
}

void postmortem(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    if (!args.positional.empty()) throw Error("usage: kmod postmortem [--modules-dir DIR]... [--json]");
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    LinuxSystem& sys = s.linux_system();
    Report r;
    try {
        r.log = read_kernel_log(sys.kernel());
        r.log_read = true;
    } catch (const Error& e) {
        r.log_error = e.what();
    }
    r.ctx = read_crash_context(sys.kernel(), sys.threads(), r.log_read ? &r.log : nullptr);
    std::vector<Frame> frames;
    if (r.ctx.task) {
        r.stack = stack_of(sys, s.unwinder(), *r.ctx.task);
        for (const auto& f : r.stack.frames) frames.push_back(f.frame);
        if (locate_exception_regs(sys.kernel(), frames, r.ctx) && r.ctx.regs_frame == frames.size()) {
            // The unwind ended at the exception entry: go on from the oops registers.
            Thread at_fault = *r.ctx.task;
            at_fault.regs = r.ctx.regs;
            at_fault.on_cpu = true;  // an exact pc, and the CPU's IRQ stacks
            for (auto& f : stack_of(sys, s.unwinder(), at_fault).frames) {
                frames.push_back(f.frame);
                r.stack.frames.push_back(std::move(f));
            }
        }
    }
    AttributionInput in{sys.kernel(), sys.modules(), sys.threads(), r.ctx, frames, r.log_read ? &r.log : nullptr,
                        ko_dirs(sys, args), sys.release()};
    r.at = attribute_crash(in);
    if (args.flag("--json")) {
        Json j;
        json_report(r, sys, j);
        out = j.str() + "\n";
        return;
    }
    out = text_report(r);
}

}  // namespace

void register_postmortem(lldb::SBCommand& kmod) {
    add_command(kmod, {"postmortem", "What crashed this kernel: the crash context, and for an unload crash the vanished module, function, path and missing cleanup.",
                       "kmod postmortem [--modules-dir DIR]... [--json]\n"
                       "  --modules-dir DIR  search DIR first for the .ko of a module that is no longer loaded\n"
                       "                     (repeatable; then the directories of the loaded modules' .ko files,\n"
                       "                     /usr/lib/debug/lib/modules/RELEASE and /lib/modules/RELEASE)\n"
                       "  --json             machine-readable output\n"
                       "Crash context: the panicking CPU (panic_cpu) and its task, the oops from the kernel log,\n"
                       "the oops registers (the exception's pt_regs on the crashing stack), the faulting address.\n"
                       "An unload crash faults at a pc or address in a hole of the module area where no live\n"
                       "module is mapped: the module is named from last_unloaded_module and the log, and a\n"
                       "candidate .ko is laid out as the kernel lays out modules at a page-aligned base that\n"
                       "explains the stale pc and the other stale pointers (the timer_list, work_struct,\n"
                       "notifier_block or kthread handed over, registers, stack words); the path (timer, work,\n"
                       "thread, callback) and the cleanup the module's exit missed follow from the caller.\n"
                       "Without the .ko the module is still named, the function is not.",
                       {"--json"}, {"--modules-dir"}, postmortem});
}

}  // namespace kq
