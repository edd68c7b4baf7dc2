// Provider "notifiers": callbacks registered on the kernel's global notifier
// chains.
//
// A chain is a *_notifier_head (atomic, blocking, raw or srcu) whose `head`
// points to the first struct notifier_block; blocks are chained by `next`
// (NULL-terminated, in priority order) and each has a `notifier_call`. The
// chains read are the well-known global heads of the table below, found by
// symbol (a head this kernel does not have is skipped and named in the
// coverage); their type decides where `head` is. Chains that live inside
// other objects (per network namespace, per bus, per device) are not read.
//
// Reported: one notifier reference per block, the block as object and its
// callback as func, the chain as subject.
#include <string>
#include <unordered_set>
#include <vector>

#include "kernel/linux/providers.h"

namespace kq {
namespace {

constexpr size_t kMaxBlocks = 1u << 14;  // per chain: beyond this the chain is not a kernel's

struct Chain {
    const char* symbol;
    const char* head_type;
};

// Global chain heads of Linux 6.x (kernel/, mm/, net/, drivers/ built in).
const Chain kChains[] = {
    {"reboot_notifier_list", "blocking_notifier_head"},
    {"restart_handler_list", "atomic_notifier_head"},
    {"restart_prep_handler_list", "blocking_notifier_head"},
    {"power_off_handler_list", "atomic_notifier_head"},
    {"power_off_prep_handler_list", "blocking_notifier_head"},
    {"panic_notifier_list", "atomic_notifier_head"},
    {"die_chain", "atomic_notifier_head"},
    {"module_notify_list", "blocking_notifier_head"},
    {"pm_chain_head", "blocking_notifier_head"},
    {"keyboard_notifier_list", "atomic_notifier_head"},
    {"vt_notifier_list", "atomic_notifier_head"},
    {"netdev_chain", "raw_notifier_head"},
    {"netevent_notif_chain", "atomic_notifier_head"},
    {"inetaddr_chain", "blocking_notifier_head"},
    {"inetaddr_validator_chain", "blocking_notifier_head"},
    {"inet6addr_chain", "atomic_notifier_head"},
    {"inet6addr_validator_chain", "blocking_notifier_head"},
    {"oom_notify_list", "blocking_notifier_head"},
    {"vmap_notify_list", "blocking_notifier_head"},
    {"memory_chain", "blocking_notifier_head"},
    {"crypto_chain", "blocking_notifier_head"},
    {"acpi_chain_head", "blocking_notifier_head"},
    {"acpi_reconfig_chain", "blocking_notifier_head"},
    {"x86_mce_decoder_chain", "blocking_notifier_head"},
    {"tracepoint_notify_list", "blocking_notifier_head"},
    {"cpufreq_policy_notifier_list", "blocking_notifier_head"},
    {"cpufreq_transition_notifier_list", "srcu_notifier_head"},
    {"lease_notifier_chain", "srcu_notifier_head"},
    {"fb_notifier_list", "blocking_notifier_head"},
    {"backlight_notifier", "blocking_notifier_head"},
    {"pvclock_gtod_chain", "raw_notifier_head"},
    {"xen_resume_notifier", "raw_notifier_head"},
    {"xenstore_chain", "blocking_notifier_head"},
    {"acpi_hed_notify_list", "blocking_notifier_head"},
    {"blocking_lsm_notifier_chain", "blocking_notifier_head"},
    {"dcbevent_notif_chain", "atomic_notifier_head"},
    {"fips_fail_notif_chain", "atomic_notifier_head"},
    {"iosf_mbi_pmic_bus_access_notifier", "blocking_notifier_head"},
    {"netlink_chain", "blocking_notifier_head"},
    {"nvmem_notifier", "blocking_notifier_head"},
    {"power_supply_notifier", "blocking_notifier_head"},
    {"ppr_notifier", "atomic_notifier_head"},
    {"switchdev_notif_chain", "atomic_notifier_head"},
    {"switchdev_blocking_notif_chain", "raw_notifier_head"},
    {"vendor_record_notify_list", "blocking_notifier_head"},
    {"vmfork_chain", "blocking_notifier_head"},
};

}  // namespace

void survey_notifiers(const SurveyContext& ctx, Survey& out) {
    const LinuxKernel& k = ctx.kernel;
    MemorySource& mem = k.mem();
    const uint64_t call = k.off("notifier_block", "notifier_call"), next = k.off("notifier_block", "next"),
                   priority = k.off("notifier_block", "priority");
    size_t read = 0, blocks = 0;
    std::vector<std::string> absent, broken;
    for (const Chain& c : kChains) {
        // The symbol must be there, with the size of its head type (a same-named
        // object of another kind in another kernel is not read).
        const ElfSymbol* s = k.vmlinux().symbol(c.symbol);
        auto sym = k.find_symbol(c.symbol);
        auto head_off = k.types().offset(c.head_type, "head");
        if (!s || !sym || !head_off || s->size != k.types().size(c.head_type)) {
            absent.push_back(c.symbol);
            continue;
        }
        std::unordered_set<uint64_t> seen;
        std::string problem;
        auto nb = mem.read_u64(*sym + *head_off);
        for (; nb && *nb; nb = mem.read_u64(*nb + next)) {
            if (!seen.insert(*nb).second) { problem = "loops"; break; }
            if (seen.size() > kMaxBlocks) { problem = "longer than " + std::to_string(kMaxBlocks); break; }
            auto fn = mem.read_u64(*nb + call);
            auto prio = mem.read_as<int32_t>(*nb + priority);
            if (!fn || !prio) { problem = "unreadable notifier_block"; break; }
            KernelRef r;
            r.kind = RefKind::notifier;
            r.func = *fn;
            r.object = *nb;
            r.subject = c.symbol;
            r.detail = "priority " + std::to_string(*prio);
            out.refs.push_back(std::move(r));
            ++blocks;
        }
        if (!nb && problem.empty()) problem = "unreadable pointer";
        if (!problem.empty()) broken.push_back(std::string(c.symbol) + " (" + problem + ")");
        else ++read;
    }
    Coverage cov{"notifiers", "", true, ""};
    cov.covered = std::to_string(read) + " global notifier chains read, " + std::to_string(blocks) + " callbacks";
    if (!absent.empty()) {
        cov.covered += "; not in this kernel:";
        for (const auto& a : absent) cov.covered += " " + a;
    }
    cov.covered += "; per-namespace, per-bus and per-device chains not read";
    if (!broken.empty()) {
        cov.complete = false;
        cov.gap = "chains not read to their end:";
        for (const auto& b : broken) cov.gap += " " + b;
    }
    out.coverage.push_back(std::move(cov));
}

}  // namespace kq
