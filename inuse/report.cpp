#include "inuse/report.h"

#include <algorithm>

namespace kq {

const char* to_string(Severity s) {
    switch (s) {
        case Severity::blocking: return "blocking";
        case Severity::refused_by_kernel: return "refused-by-kernel";
        case Severity::advisory: return "advisory";
    }
    return "?";
}

const char* to_string(Verdict v) {
    switch (v) {
        case Verdict::safe: return "SAFE";
        case Verdict::busy: return "BUSY";
        case Verdict::unsafe: return "UNSAFE";
        case Verdict::unknown: return "UNKNOWN";
    }
    return "?";
}

namespace {

void thread_evidence(const InuseInput& in, Report& r) {
    const Module& m = *in.module;
    size_t complete = 0, scanned = 0, known = 0;
    std::vector<std::string> running;  // on a CPU, registers unknown, whereabouts unknown
    for (const auto& st : in.stacks) {
        const Thread& t = *st.thread;
        if (t.regs_unknown) {
            if (!t.whereabouts.empty())
                ++known;
            else
                running.push_back(task_label(t) + " on CPU " + std::to_string(t.cpu));
        }
        complete += reached_base(st.frames) || !t.whereabouts.empty();
        scanned += st.scan_done;
        for (size_t i = 0; i < st.frames.size(); ++i) {
            const Frame& f = st.frames[i];
            if (!m.contains(f.lookup_pc())) continue;
            Evidence e;
            e.kind = i == 0 ? "thread_pc" : "thread_frame";
            e.severity = Severity::blocking;
            e.subject = task_label(t);
            e.address = f.pc;
            e.symbol = in.symbolize ? in.symbolize(f.lookup_pc()) : "";
            e.detail = i == 0 ? std::string(t.on_cpu ? "running in the module" : "its saved pc is in the module")
                              : "frame #" + std::to_string(i) + " of " + std::to_string(st.frames.size()) +
                                    " (found by " + to_string(f.method) + ")";
            e.tasks = {t.id};
            r.evidence.push_back(std::move(e));
            break;  // one per task: the youngest frame in the module
        }
        for (uint64_t ra : st.scanned) {
            if (!m.contains(ra - 1)) continue;
            Evidence e;
            e.kind = "stack_word";
            e.severity = Severity::advisory;
            e.subject = task_label(t);
            e.address = ra;
            e.symbol = in.symbolize ? in.symbolize(ra - 1) : "";
            e.detail = "a return address on its stack outside the unwound frames";
            e.tasks = {t.id};
            r.evidence.push_back(std::move(e));
        }
    }
    Coverage c;
    c.provider = "threads";
    c.covered = std::to_string(complete - known) + "/" + std::to_string(in.tasks_total) + " tasks unwound to their base";
    if (!in.reread.empty())
        c.covered += " (" + std::to_string(in.reread.size()) + " reads again of tasks that ran while read)";
    if (known)
        c.covered += ", " + std::to_string(known) +
                     " running without registers but known to be elsewhere (idle CPUs, kquiesce's own process)";
    if (complete < in.tasks_total) {
        c.complete = false;
        const size_t cut = in.tasks_total - complete - running.size();
        if (cut) c.gap = std::to_string(cut) + " stacks did not reach their base: a frame in the module may be missed";
        if (!running.empty()) {
            if (!c.gap.empty()) c.gap += "; ";
            c.gap += std::to_string(running.size()) + " tasks were running on another CPU, whose registers the kernel's " +
                     "memory does not hold:";
            for (size_t i = 0; i < running.size() && i < 8; ++i) c.gap += (i ? ", " : " ") + running[i];
            if (running.size() > 8) c.gap += ", ...";
        }
    }
    r.coverage.push_back(std::move(c));
}

void accounting_evidence(const Module& m, Report& r) {
    if (m.refcount > 0) {
        r.evidence.push_back({"refcount", Severity::refused_by_kernel, "module " + m.name, m.addr, "",
                              0, "reference count " + std::to_string(m.refcount), {}});
    }
    for (const auto& h : m.holders)
        r.evidence.push_back({"holder", Severity::refused_by_kernel, "module " + h, m.addr, "", 0,
                              "module " + h + " uses its symbols", {}});
    if (m.state != "Live")
        r.evidence.push_back({"module_state", Severity::refused_by_kernel, "module " + m.name, m.addr, "", 0,
                              "state " + m.state + " (not Live)", {}});
    Coverage c;
    c.provider = "module accounting";
    c.covered = "refcount, holders, state";
    if (m.refcount < 0) {
        c.complete = false;
        c.gap = "the reference count could not be read";
    }
    r.coverage.push_back(std::move(c));
}

void survey_evidence(const InuseInput& in, Report& r) {
    const Module& m = *in.module;
    for (const auto& ref : in.survey.refs) {
        uint64_t where = 0;
        std::string what;
        if (ref.func && m.contains(ref.func)) where = ref.func, what = "calls into the module";
        else if (ref.object && m.contains(ref.object)) where = ref.object, what = "the object lives in the module";
        else if (ref.data && m.contains(ref.data)) where = ref.data, what = "points into the module's data";
        if (!where) continue;
        Evidence e;
        e.kind = to_string(ref.kind);
        e.severity = Severity::blocking;
        e.subject = ref.subject;
        e.address = where;
        e.symbol = in.symbolize ? in.symbolize(where) : "";
        e.object = ref.object;
        e.detail = what + (ref.detail.empty() ? "" : "; " + ref.detail);
        e.tasks = ref.tasks;
        r.evidence.push_back(std::move(e));
    }
    r.coverage.insert(r.coverage.end(), in.survey.coverage.begin(), in.survey.coverage.end());
}

}  // namespace

Verdict decide(const std::vector<Evidence>& ev, const std::vector<Coverage>& cov, std::vector<std::string>* reasons) {
    size_t blocking = 0, refused = 0;
    for (const auto& e : ev) {
        blocking += e.severity == Severity::blocking;
        refused += e.severity == Severity::refused_by_kernel;
    }
    std::vector<std::string> gaps;
    for (const auto& c : cov)
        if (!c.complete) gaps.push_back(c.provider + ": " + c.gap);
    std::vector<std::string> why;
    Verdict v;
    if (blocking) {
        v = Verdict::unsafe;
        why.push_back(std::to_string(blocking) + " blocking evidence: unloading now, even forced, leaves the kernel a path into freed memory");
    } else if (!gaps.empty()) {
        v = Verdict::unknown;
        why.push_back("coverage incomplete; nothing blocking found in what was covered");
    } else if (refused) {
        v = Verdict::busy;
        why.push_back(std::to_string(refused) + " refused-by-kernel evidence: a normal unload fails; a forced one finds nothing blocking");
    } else {
        v = Verdict::safe;
        why.push_back("nothing blocking or refused, and every provider covered everything");
    }
    if (v != Verdict::unknown)
        for (const auto& g : gaps) why.push_back("not covered: " + g);
    else
        why.insert(why.end(), gaps.begin(), gaps.end());
    if (reasons) *reasons = std::move(why);
    return v;
}

Report analyze(const InuseInput& in) {
    Report r;
    r.module = in.module->name;
    thread_evidence(in, r);
    accounting_evidence(*in.module, r);
    survey_evidence(in, r);
    r.evidence.insert(r.evidence.end(), in.extra_evidence.begin(), in.extra_evidence.end());
    r.coverage.insert(r.coverage.end(), in.extra_coverage.begin(), in.extra_coverage.end());
    std::stable_sort(r.evidence.begin(), r.evidence.end(),
                     [](const Evidence& a, const Evidence& b) { return a.severity < b.severity; });
    r.verdict = decide(r.evidence, r.coverage, &r.reasons);
    return r;
}

}  // namespace kq
