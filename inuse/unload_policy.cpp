#include "inuse/unload_policy.h"

#include <algorithm>

namespace kq {
namespace {

std::string line(const Evidence& e) {
    std::string s = e.kind + ": " + e.subject;
    if (!e.symbol.empty()) s += " " + e.symbol;
    if (!e.detail.empty()) s += " (" + e.detail + ")";
    return s;
}

// Evidence no exit function can take away: a user task in the module's
// code or asleep on its objects, an open file, a dependent module.
bool exit_cannot_undo(const Evidence& e, const std::function<bool(int64_t)>& user_task) {
    if (e.kind == "open_file" || e.kind == "holder") return true;
    if (e.severity != Severity::blocking) return false;
    return std::any_of(e.tasks.begin(), e.tasks.end(), [&](int64_t t) { return user_task && user_task(t); });
}

}  // namespace

UnloadStep decide_unload_entry(const Report& r, bool force, bool quiesced, const std::function<bool(int64_t)>& user_task) {
    UnloadStep s;
    if (!force && quiesced) {
        std::vector<std::string> still;
        s.proceed = drained(r, user_task, &still);
        s.reasons.push_back(s.proceed ? "quiesced and drained: its users are gone; its exit function undoes the rest"
                                      : "quiesced but not drained: vetoed");
        s.reasons.insert(s.reasons.end(), still.begin(), still.end());
        return s;
    }
    if (!force) {
        s.proceed = r.verdict == Verdict::safe;
        if (s.proceed) s.reasons.push_back("SAFE: nothing uses the module");
        else {
            s.reasons.push_back(std::string(to_string(r.verdict)) + " without --force: vetoed");
            s.reasons.insert(s.reasons.end(), r.reasons.begin(), r.reasons.end());
        }
        return s;
    }
    for (const auto& e : r.evidence)
        if (exit_cannot_undo(e, user_task)) s.reasons.push_back("no exit function can undo " + line(e));
    s.proceed = s.reasons.empty();
    if (!s.proceed) {
        s.reasons.insert(s.reasons.begin(), "forced unload refused: it would endanger the kernel");
        return s;
    }
    size_t left_to_exit = 0;
    for (const auto& e : r.evidence) left_to_exit += e.severity == Severity::blocking;
    s.reasons.push_back(std::string(to_string(r.verdict)) + " with --force: the kernel's refusals are skipped");
    if (left_to_exit)
        s.reasons.push_back(std::to_string(left_to_exit) + (left_to_exit == 1 ? " blocking use is" : " blocking uses are") +
                            " left to the module's exit function; checked again before its memory is freed");
    for (const auto& c : r.coverage)
        if (!c.complete) s.reasons.push_back("not covered: " + c.provider + " (" + c.gap + ")");
    return s;
}

UnloadStep decide_free(const Report& r) {
    UnloadStep s;
    for (const auto& e : r.evidence)
        if (e.severity == Severity::blocking) s.reasons.push_back("still reaching into it: " + line(e));
    // A check that could have found something blocking but did not cover
    // everything guards too: a leak is the cheap mistake. The accounting
    // and the raw scan never find anything blocking.
    for (const auto& c : r.coverage)
        if (!c.complete && c.provider != "module accounting" && c.provider != "memory reference scan")
            s.reasons.push_back("could not tell: " + c.provider + " (" + c.gap + ")");
    s.proceed = s.reasons.empty();
    if (s.proceed) s.reasons.push_back("nothing reaches into the module after its exit: freed");
    for (const auto& c : r.coverage)
        if (!c.complete && (c.provider == "module accounting" || c.provider == "memory reference scan"))
            s.reasons.push_back("not covered: " + c.provider + " (" + c.gap + ")");
    return s;
}

bool drained(const Report& r, const std::function<bool(int64_t)>& user_task, std::vector<std::string>* still) {
    bool ok = true;
    for (const auto& e : r.evidence) {
        const bool refused = e.severity == Severity::refused_by_kernel && e.kind != "module_state";
        if (!refused && !exit_cannot_undo(e, user_task)) continue;
        ok = false;
        if (still) still->push_back(line(e));
    }
    return ok;
}

}  // namespace kq
