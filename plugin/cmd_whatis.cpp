// kmod whatis ADDR: what a kernel address is.
#include <optional>

#include "kernel/linux/slab.h"
#include "plugin/commands.h"
#include "plugin/module_refs.h"
#include "plugin/session.h"
#include "plugin/stack.h"

namespace kq {
namespace {

struct WhatIs {
    // "module", "kernel", "stack", "cpu stack", "task_struct", "percpu", "slab", "page", "direct map", "unknown"
    std::string kind;
    std::string owner;   // module name, task, CPU stack name
    std::string detail;  // section and symbol, offsets
};

// A Linux kernel's direct map: per-CPU data, slab objects, task_structs
// and other pages (nullopt: not in it).
std::optional<WhatIs> classify_linux_memory(LinuxSystem& sys, uint64_t addr);

WhatIs classify(Session& s, lldb::SBTarget& target, uint64_t addr) {
    auto& sys = s.kernel_system();
    for (const auto& m : sys.modules())
        for (const auto& r : m.ranges)
            if (r.contains(addr)) {
                std::string sym = symbol_at(target, addr, true);
                return {"module", m.name, r.what + (sym.empty() ? "" : ", " + sym) + ", offset " +
                                              hex_addr(addr - r.start) + " in the range"};
            }
    if (sys.image_range().contains(addr)) {
        lldb::SBAddress a = target.ResolveLoadAddress(addr);
        std::string section = a.GetSection().IsValid() && a.GetSection().GetName() ? a.GetSection().GetName() : "?";
        std::string sym = symbol_at(target, addr, true);
        return {"kernel", sys.os() == KernelOs::Linux ? "vmlinux" : "kernel", section + (sym.empty() ? "" : ", " + sym)};
    }
    for (const auto& t : sys.threads())
        if (t.stack_base && addr >= t.stack_base && addr - t.stack_base < t.stack_size)
            return {"stack", task_label(t),
                    "offset " + hex_addr(addr - t.stack_base) + " of its " + std::to_string(t.stack_size / 1024) +
                        " KiB stack (" + hex_addr(t.stack_base + t.stack_size - addr) + " below the top)"};
    for (const auto& st : s.unwinder().cpu_stacks())
        if (st.contains(addr, 1))
            return {"cpu stack", "CPU " + std::to_string(st.cpu) + " " + st.name + " stack",
                    "offset " + hex_addr(addr - st.base)};
    if (sys.os() != KernelOs::Linux)
        return {"unknown", "", "not in a module, the kernel image or a stack (memory beyond those is named on Linux only)"};
    if (auto w = classify_linux_memory(s.linux_system(), addr)) return *w;
    return {"unknown", "", "not in a module, the kernel image, a stack or the direct map"};
}

std::optional<WhatIs> classify_linux_memory(LinuxSystem& sys, uint64_t addr) {
    auto& k = sys.kernel();
    // A task_struct by the tasks' own addresses, when the slab cannot say.
    auto task_struct = [&]() -> std::optional<WhatIs> {
        for (const auto& t : sys.threads())
            if (addr >= t.task && addr - t.task < 0x4000)
                if (auto size = k.types().size("task_struct"); size && addr - t.task < *size)
                    return WhatIs{"task_struct", task_label(t), "offset " + hex_addr(addr - t.task) + " in its task_struct"};
        return std::nullopt;
    };
    const uint64_t direct = k.direct_map_base();
    // Physical memory there is: what a dump holds, a live kernel's RAM; a
    // live kernel's direct map also maps some that is not RAM (the ISA
    // hole), its page tables say which.
    PhysicalMemory& phys = sys.physical();
    std::vector<std::pair<uint64_t, uint64_t>> ram = phys.memory_ranges();
    if (direct && addr >= direct && !sys.is_dump() && phys.to_phys(addr) == addr - direct)
        ram = {{addr - direct, addr - direct + 1}};
    if (direct && addr >= direct)
        for (const auto& [a, b] : ram)
            if (addr - direct >= a && addr - direct < b) {
                const std::string phys = "physical address " + hex_addr(addr - direct);
                if (std::string pc = per_cpu_name(sys, addr); !pc.empty())
                    return WhatIs{"percpu", "vmlinux", pc + ", " + phys};
                Slabs slabs(k);
                PageOwner o = slabs.owner(addr);
                if (o.kind == PageOwner::Kind::slab && o.what.empty()) {
                    const SlabObject& so = o.slab;
                    for (const auto& t : sys.threads())
                        if (t.task == so.object)
                            return WhatIs{"task_struct", task_label(t),
                                    "offset " + hex_addr(so.offset) + " in its task_struct (" + so.cache + " object)"};
                    std::string state = to_string(so.state);
                    if (!so.state_note.empty()) state += " (" + so.state_note + ")";
                    return WhatIs{"slab", so.cache,
                            "object " + hex_addr(so.object) + " +" + hex_addr(so.offset) + " of " +
                                std::to_string(so.object_size) + " bytes, " + state + ", " + phys};
                }
                if (o.kind == PageOwner::Kind::slab) return WhatIs{"slab", o.slab.cache, o.what + ", " + phys};
                if (o.kind == PageOwner::Kind::page) return WhatIs{"page", "physical memory", o.what + ", " + phys};
                if (auto t = task_struct()) return *t;
                return WhatIs{"direct map", "physical memory", phys + " (" + o.what + ")"};
            }
    return task_struct();
}

void whatis(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    if (args.positional.size() != 1) throw Error("usage: kmod whatis ADDR [--json]");
    const auto n = parse_number(args.positional[0]);
    if (!n) throw Error("not an address: " + args.positional[0]);
    const uint64_t addr = *n;
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    WhatIs w = classify(s, target, addr);
    if (args.flag("--json")) {
        Json j;
        j.begin_object().field_addr("address", addr).field("kind", w.kind).field("owner", w.owner).field("detail", w.detail).end_object();
        out = j.str() + "\n";
        return;
    }
    out = hex_addr(addr) + ": " + w.kind + (w.owner.empty() ? "" : " " + w.owner) + (w.detail.empty() ? "" : " -- " + w.detail) + "\n";
}

}  // namespace

void register_whatis(lldb::SBCommand& kmod) {
    add_command(kmod, {"whatis", "What a kernel address is: module, kernel symbol, stack, memory.",
                       "kmod whatis ADDR [--json]\n"
                       "  module (range, section symbol), kernel image (section, symbol), a task's stack,\n"
                       "  a CPU's IRQ or exception stack, a task_struct, a CPU's per-CPU data, a slab\n"
                       "  object (cache, object, offset, allocated or free), or another page of\n"
                       "  direct-mapped memory (free, reserved, page cache ...); on FreeBSD: module,\n"
                       "  kernel image or a thread's stack",
                       {"--json"}, {}, whatis});
}

}  // namespace kq
