#include "plugin/stack.h"

#include <cstdio>

namespace kq {

std::string hex_addr(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%#llx", static_cast<unsigned long long>(v));
    return b;
}

// What frames in the kernel image are attributed to: FreeBSD calls its
// image "kernel".
static const char* image_name(const KernelSystem& sys) { return sys.os() == KernelOs::FreeBSD ? "kernel" : "vmlinux"; }

Stack stack_of(const KernelSystem& sys, KernelUnwinder& unw, const Thread& t) {
    Stack s;
    for (const Frame& fr : unw.unwind(t)) {
        StackFrame f;
        f.frame = fr;
        if (auto fn = unw.code_map().function_at(fr.lookup_pc())) {
            f.symbol = fn->name;
            f.offset = fr.pc - fn->start;
            f.module = fn->module.empty() ? image_name(sys) : fn->module;
        }
        // A module's ranges decide even without its .ko (no symbols then).
        for (const auto& m : sys.modules())
            if (m.contains(fr.lookup_pc())) f.module = m.name;
        if (f.module.empty() && unw.code_map().is_text(fr.lookup_pc())) f.module = image_name(sys);
        s.frames.push_back(std::move(f));
    }
    s.complete = !s.frames.empty() && is_base(s.frames.back().frame.stop);
    return s;
}

std::vector<ScanWord> scan_of(const KernelSystem& sys, KernelUnwinder& unw, const Thread& t, const Stack& st,
                              const std::string& module) {
    std::vector<Frame> frames;
    for (const auto& f : st.frames) frames.push_back(f.frame);
    std::vector<ScanWord> out;
    for (const StackWord& w : unw.scan(t, frames)) {
        if (w.where == StackWord::Where::frame) continue;
        const Module* owner = nullptr;
        for (const auto& m : sys.modules())
            if (m.contains(w.value - 1)) owner = &m;
        if (!owner || (!module.empty() && owner->name != module)) continue;
        ScanWord s{w, {}, 0, owner->name};
        if (auto fn = unw.code_map().function_at(w.value - 1)) {
            s.symbol = fn->name;
            s.offset = w.value - fn->start;
        }
        out.push_back(std::move(s));
    }
    return out;
}

void scan_json(Json& j, const ScanWord& w) {
    j.begin_object()
        .field_addr("slot", w.word.slot)
        .field_addr("value", w.word.value)
        .field("symbol", w.symbol)
        .field("offset", w.offset)
        .field("module", w.module)
        .field("where", std::string(to_string(w.word.where)))
        .field("stack", std::string(to_string(w.word.stack)))
        .end_object();
}

std::string scan_line(const ScanWord& w) {
    std::string sym = w.symbol.empty() ? "??" : w.symbol + "+" + hex_addr(w.offset);
    return "    ?  " + hex_addr(w.word.value) + " " + sym + " [" + w.module + "]  scan: on the stack at " +
           hex_addr(w.word.slot) + " (" + to_string(w.word.where) + ", advisory)\n";
}

void frame_json(Json& j, size_t index, const StackFrame& f, const std::string& mark) {
    j.begin_object()
        .field("index", static_cast<uint64_t>(index))
        .field_addr("pc", f.frame.pc)
        .field_addr("sp", f.frame.sp)
        .field("symbol", f.symbol)
        .field("offset", f.offset);
    j.key("module");
    if (f.module.empty()) j.null(); else j.value(f.module);
    j.field("in_module", !mark.empty() && f.module == mark)
        .field("method", std::string(to_string(f.frame.method)))
        .field("confidence", std::string(to_string(f.frame.confidence)))
        .field("return_check", std::string(to_string(f.frame.check)))
        .field("stack", std::string(to_string(f.frame.stack)));
    if (f.frame.stop != StopReason::none) j.field("stop", f.frame.stop_text());
    j.end_object();
}

std::string frame_line(size_t index, const StackFrame& f, bool marked, bool show_method) {
    std::string sym = f.symbol.empty() ? "??" : f.symbol + "+" + hex_addr(f.offset);
    char line[512];
    snprintf(line, sizeof line, "  %s#%-2zu %s %s [%s]", marked ? "=>" : "  ", index, hex_addr(f.frame.pc).c_str(),
             sym.c_str(), f.module.empty() ? "?" : f.module.c_str());
    std::string s = line;
    if (show_method) s += std::string("  ") + to_string(f.frame.method) + "/" + to_string(f.frame.confidence);
    if (f.frame.stop != StopReason::none) s += "  (" + f.frame.stop_text() + ")";
    return s + "\n";
}

}  // namespace kq
