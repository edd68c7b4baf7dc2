#include "inuse/collect.h"

namespace kq {
namespace {

constexpr int kRereads = 5;

}  // namespace

InuseInput collect_inuse(const KernelSystem& sys, KernelUnwinder& unw, const Module& module,
                         const std::function<void(const std::string&)>& say) {
    InuseInput in;
    in.module = &module;
    const auto& threads = sys.threads();
    in.tasks_total = threads.size();
    const size_t n = threads.size();
    for (size_t i = 0; i < n; ++i) {
        if (say && n >= 512 && i % 256 == 0) say("unwinding tasks: " + std::to_string(i * 100 / n) + "%");
        const Thread& t = threads[i];
        ThreadStack ts;
        ts.thread = &t;
        ts.frames = unw.unwind(t);
        // A kernel that runs while read: a task that ran since its switch
        // frame was read has another stack by now. Read it again.
        for (int again = 0; again < kRereads && !reached_base(ts.frames) && !ts.thread->regs_unknown; ++again) {
            auto fresh = sys.reread_thread(t);
            if (!fresh) break;
            in.reread.push_back(std::move(*fresh));
            ts.thread = &in.reread.back();
            ts.frames = unw.unwind(*ts.thread);
        }
        const Thread& now = *ts.thread;
        for (const auto& w : unw.scan(now, ts.frames))
            if (w.where != StackWord::Where::frame) ts.scanned.push_back(w.value);
        ts.scan_done = true;
        in.stacks.push_back(std::move(ts));
    }
    in.survey = sys.survey([&](const std::string& p) {
        if (say) say("reading " + p);
    });
    return in;
}

}  // namespace kq
