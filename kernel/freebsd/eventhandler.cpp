// Provider "eventhandlers": every handler registered on a named event
// (eventhandler_lists -> el_entries): the kernel calls it with its argument
// whenever the event fires (shutdown, process exit, interface arrival ...).
// Entries marked dead (priority EHE_DEAD_PRIORITY) wait to be freed and are
// not called: they are not reported.
#include "kernel/freebsd/providers.h"
#include "kernel/freebsd/queue_walk.h"

namespace kq::fbsd {
namespace {

constexpr int64_t EHE_DEAD_PRIORITY = -1;

}  // namespace

void survey_eventhandlers(const FreebsdSurveyContext& ctx, Survey& out) {
    const FreebsdKernel& k = ctx.kernel;
    MemorySource& mem = k.mem();
    const uint64_t o_list = k.off("eventhandler_list", "el_link.tqe_next");
    const uint64_t o_entry = k.off("eventhandler_entry", "ee_link.tqe_next");
    // The handler follows the entry (eventhandler_entry_generic.func, or
    // each event's eh_func at the same place).
    const uint64_t o_func = k.off("eventhandler_entry_generic", "func");
    WalkProblems problems;
    size_t lists = 0, handlers = 0;
    WalkResult all = walk_queue_head(mem, k.symbol("eventhandler_lists"), o_list, [&](uint64_t el) {
        ++lists;
        const std::string name = k.read_name(el, "eventhandler_list", "el_name");
        WalkResult r = walk_queue_head(mem, el + k.off("eventhandler_list", "el_entries"), o_entry, [&](uint64_t e) {
            auto prio = k.read_int(e, "eventhandler_entry", "ee_priority");
            auto func = mem.read_u64(e + o_func);
            if (!prio || !func) {
                problems.add("eventhandler " + name + ": entry " + addr_text(e) + " is unreadable");
                return true;
            }
            if (*prio == EHE_DEAD_PRIORITY) return true;
            ++handlers;
            KernelRef ref;
            ref.kind = RefKind::notifier;
            ref.func = *func;
            ref.object = e;
            ref.data = k.read_ptr(e, "eventhandler_entry", "ee_arg").value_or(0);
            ref.subject = "eventhandler " + name;
            ref.detail = "priority " + std::to_string(*prio);
            out.refs.push_back(std::move(ref));
            return true;
        });
        problems.check("eventhandler " + name, r);
        return true;
    });
    problems.check("eventhandler_lists", all);
    Coverage c{"eventhandlers", std::to_string(lists) + " events, " + std::to_string(handlers) + " handlers",
               problems.empty(), problems.summary()};
    out.coverage.push_back(std::move(c));
}

}  // namespace kq::fbsd
