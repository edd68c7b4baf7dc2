#include "unwinder/linux_unwind.h"

#include "symbols/types.h"

namespace kq {
namespace {

std::vector<std::pair<uint64_t, uint64_t>> text_of(const Module& m) {
    std::vector<std::pair<uint64_t, uint64_t>> t;
    for (const auto& r : m.ranges)
        if (r.what == "text" || r.what == "init text") t.push_back({r.start, r.start + r.size});
    return t;
}

}  // namespace

LinuxUnwinder::~LinuxUnwinder() = default;

LinuxUnwinder::LinuxUnwinder(const LinuxKernel& k, const std::vector<Module>& modules, LinuxUnwindOptions opts) {
    const ElfImage& vmlinux = k.vmlinux();
    Types& types = k.types();
    const uint64_t slide = k.slide();

    image_mem_ = std::make_unique<ImageMemory>(vmlinux, slide);
    code_mem_ = std::make_unique<LayeredMemory>(k.mem(), *image_mem_);
    {
        // Init code is freed after boot: its return addresses are checked
        // against the file.
        std::vector<std::pair<uint64_t, uint64_t>> init;
        for (const char* n : {".init.text", ".exit.text"})
            if (const ElfSection* s = vmlinux.section(n); s && s->addr && s->size)
                init.push_back({s->addr + slide, s->addr + slide + s->size});
        code_mem_->prefer_fallback(std::move(init));
    }
    map_ = std::make_unique<ImageCodeMap>(vmlinux, slide);

    OrcLayout layout = OrcLayout::from_types(types, opts.orc_bits);
    OrcIndex index;
    {
        OrcTable t = OrcTable::from_image(vmlinux, slide, layout);
        double score = orc_layout_score(t, vmlinux, slide);
        if (score < 0.9)
            throw Error("the ORC bitfield layout does not explain vmlinux's table (" +
                        std::to_string(static_cast<int>(score * 100)) + "% of function entries read as CFA=sp+8)");
        index.add(std::move(t));
    }

    // Static keys and exception fixups of vmlinux.
    try {
        edges_ = HiddenEdges::from_image(vmlinux, slide, EdgeEntryLayout::jump_entry(types), "__start___jump_table",
                                         "__stop___jump_table");
    } catch (const Error& e) {
        warnings_.push_back(std::string("static keys: ") + e.what());
    }
    try {
        edges_.merge(HiddenEdges::from_image(vmlinux, slide, EdgeEntryLayout::exception_table_entry(types),
                                             "__start___ex_table", "__stop___ex_table"));
    } catch (const Error& e) {
        warnings_.push_back(std::string("exception table: ") + e.what());
    }

    // Modules: ORC tables from their memory, symbols from their .ko.
    {
        // Module tables are added to `index` below; the ORC index is moved
        // into the Unwinder last.
        const uint64_t o_num = types.offset("module", "arch.num_orcs").value_or(UINT64_MAX);
        const uint64_t o_ip = types.offset("module", "arch.orc_unwind_ip").value_or(UINT64_MAX);
        const uint64_t o_orc = types.offset("module", "arch.orc_unwind").value_or(UINT64_MAX);
        const auto o_jumps = types.offset("module", "jump_entries");
        const auto o_njumps = types.offset("module", "num_jump_entries");
        const auto o_ex = types.offset("module", "extable");
        const auto o_nex = types.offset("module", "num_exentries");
        std::optional<EdgeEntryLayout> jl, el;
        try {
            jl = EdgeEntryLayout::jump_entry(types);
            el = EdgeEntryLayout::exception_table_entry(types);
        } catch (const Error&) {
        }
        if (o_num == UINT64_MAX || o_ip == UINT64_MAX || o_orc == UINT64_MAX)
            warnings_.push_back("struct module has no arch.num_orcs/orc_unwind_ip/orc_unwind: modules unwound without ORC");
        MemorySource& mem = k.mem();
        for (const Module& m : modules) {
            auto text = text_of(m);
            ImageCodeMap::ModuleText mt;
            mt.name = m.name;
            mt.text = text;
            for (const auto& s : m.sections) mt.section_addrs[s.name] = s.addr;
            if (opts.open_ko && !m.ko_path.empty()) {
                try {
                    kos_.push_back(ElfImage::open(m.ko_path));
                    mt.ko = kos_.back().get();
                } catch (const Error& e) {
                    warnings_.push_back(m.name + ": " + e.what());
                }
            }
            map_->add_module(std::move(mt));
            if (o_num != UINT64_MAX && o_ip != UINT64_MAX && o_orc != UINT64_MAX) {
                auto n = mem.read_as<uint32_t>(m.addr + o_num);
                auto ip = mem.read_u64(m.addr + o_ip);
                auto ent = mem.read_u64(m.addr + o_orc);
                if (!n || !ip || !ent) {
                    warnings_.push_back(m.name + ": struct module's ORC fields are unreadable");
                } else if (*n) {
                    try {
                        index.add(OrcTable::from_memory(mem, *ip, *ent, *n, layout, text, m.name));
                    } catch (const Error& e) {
                        warnings_.push_back(m.name + ": " + e.what());
                    }
                }
            }
            auto edges_of = [&](std::optional<uint64_t> o_tab, std::optional<uint64_t> o_cnt,
                                const std::optional<EdgeEntryLayout>& l) {
                if (!o_tab || !o_cnt || !l) return;
                auto tab = mem.read_u64(m.addr + *o_tab);
                auto cnt = mem.read_as<uint32_t>(m.addr + *o_cnt);
                if (tab && cnt && *tab) edges_.merge(HiddenEdges::from_memory(mem, *tab, *cnt, *l));
            };
            edges_of(o_jumps, o_njumps, jl);
            edges_of(o_ex, o_nex, el);
        }
    }

    unwinder_ = std::make_unique<Unwinder>(k.mem(), *code_mem_, *map_, std::move(index), PtRegsLayout::from_types(types),
                                           opts.unwinder);
    unwinder_->prologue().set_hidden_edges(&edges_);
    // vmlinux's .debug_frame, read only if ORC ever fails. (A .ko's CFI
    // would need its relocations against the module's section addresses:
    // not done, modules have ORC.)
    unwinder_->add_cfi(vmlinux.path(), slide);
    std::vector<uint64_t> exact;
    for (const char* s : {"ret_from_fork", "ret_from_fork_asm"})
        if (auto a = k.find_symbol(s)) exact.push_back(*a);
    unwinder_->set_exact_pc_addresses(exact);
    add_cpu_stacks(k);
    unwinder_->set_cpu_stacks(stacks_);
}

void LinuxUnwinder::add_cpu_stacks(const LinuxKernel& k) {
    Types& types = k.types();
    MemorySource& mem = k.mem();
    int ncpu = k.nr_cpus();

    // IRQ stacks: hardirq_stack_ptr points at the top word (v5.9..v6.1), or
    // pcpu_hot.hardirq_stack_ptr (v6.2+). The top word holds the sp of the
    // interrupted stack; the stack is the irq_stack struct below it.
    uint64_t irq_size = types.size("irq_stack").value_or(0);
    std::optional<std::pair<std::string, uint64_t>> irq_ptr;
    if (k.vmlinux().symbol("hardirq_stack_ptr")) irq_ptr = {{"hardirq_stack_ptr", 0}};
    else if (auto o = types.offset("pcpu_hot", "hardirq_stack_ptr"); o && k.vmlinux().symbol("pcpu_hot"))
        irq_ptr = {{"pcpu_hot", *o}};
    if (!irq_ptr || !irq_size) warnings_.push_back("IRQ stacks unknown (no hardirq_stack_ptr or struct irq_stack)");

    // Exception (IST) stacks: cea_exception_stacks points at each CPU's
    // struct cea_exception_stacks; each <NAME>_stack member is one stack.
    bool have_cea = k.vmlinux().symbol("cea_exception_stacks") != nullptr;
    static const char* ist[] = {"DF", "NMI", "DB", "DB1", "MCE", "VC", "VC2"};

    for (int c = 0; c < ncpu; ++c) {
        try {
            if (irq_ptr && irq_size) {
                auto p = mem.read_u64(k.per_cpu(irq_ptr->first, c) + irq_ptr->second);
                if (p && *p) stacks_.push_back({*p + 8 - irq_size, irq_size, StackKind::irq, c, "irq"});
            }
            if (have_cea) {
                auto cea = mem.read_u64(k.per_cpu("cea_exception_stacks", c));
                if (cea && *cea) {
                    for (const char* n : ist) {
                        std::string member = std::string(n) + "_stack";
                        auto off = types.offset("cea_exception_stacks", member);
                        auto size = types.member_size("cea_exception_stacks", member);
                        if (!off || !size || !*size) continue;
                        // The #VC stacks are mapped only under SEV-ES: a
                        // stack whose top is not mapped is not in use.
                        if (!mem.read_u64(*cea + *off + *size - 8)) {
                            if (std::string(n).rfind("VC", 0) != 0)
                                warnings_.push_back("CPU " + std::to_string(c) + ": " + n + " stack unreadable");
                            continue;
                        }
                        stacks_.push_back({*cea + *off, *size, StackKind::exception, c, n});
                    }
                }
            }
        } catch (const Error& e) {
            warnings_.push_back("CPU " + std::to_string(c) + " stacks: " + e.what());
        }
    }
}

std::string LinuxUnwinder::describe(uint64_t addr) const { return describe_code(*map_, addr, addr); }

std::string LinuxUnwinder::describe(const Frame& fr) const { return describe_code(*map_, fr.pc, fr.lookup_pc()); }

}  // namespace kq
