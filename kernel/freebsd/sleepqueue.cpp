// Provider "sleep channels": every thread asleep on a wait channel
// (td_wchan: the address it passed to sleep(9), msleep, cv_wait, sx and
// lockmgr sleeps), its message (td_wmesg) as the reference's data: after an
// unload both would point into freed memory for as long as it sleeps, and
// ps(1) reads the message.
#include "kernel/freebsd/providers.h"

namespace kq::fbsd {

void survey_sleep_channels(const FreebsdSurveyContext& ctx, Survey& out) {
    const FreebsdKernel& k = ctx.kernel;
    WalkProblems problems;
    size_t asleep = 0;
    for (const Thread& t : ctx.threads.threads) {
        auto wchan = k.read_ptr(t.task, "thread", "td_wchan");
        if (!wchan) {
            problems.add(task_label(t) + ": td_wchan unreadable");
            continue;
        }
        if (!*wchan) continue;
        ++asleep;
        const uint64_t wmesg = k.read_ptr(t.task, "thread", "td_wmesg").value_or(0);
        KernelRef r;
        r.kind = RefKind::wait_queue;
        r.object = *wchan;
        r.data = wmesg;
        r.subject = task_label(t);
        r.detail = "asleep on channel " + addr_text(*wchan);
        if (wmesg) r.detail += " (\"" + k.read_cstr(wmesg, 64) + "\")";
        r.tasks = {t.id};
        out.refs.push_back(std::move(r));
    }
    Coverage c{"sleep channels",
               std::to_string(ctx.threads.threads.size()) + " threads, " + std::to_string(asleep) + " asleep on a channel",
               problems.empty(), problems.summary()};
    out.coverage.push_back(std::move(c));
}

}  // namespace kq::fbsd
