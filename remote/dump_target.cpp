#include "remote/dump_target.h"

namespace kq {

std::string describe_thread_state(const Thread& t) {
    static const std::pair<const char*, const char*> kNames[] = {
        {"R", "running"}, {"S", "sleeping"}, {"D", "disk sleep"}, {"I", "idle"},
        {"T", "stopped"}, {"t", "tracing stop"}, {"Z", "zombie"}, {"X", "dead"}, {"P", "parked"}};
    std::string s = t.state;
    for (const auto& [k, v] : kNames)
        if (t.state == k) s += std::string(" (") + v + ")";
    if (t.on_cpu) s += ", on CPU " + std::to_string(t.cpu);
    else s += ", last ran on CPU " + std::to_string(t.cpu);
    if (t.regs_unknown) s += ", registers not in the kernel's memory" + (t.whereabouts.empty() ? "" : " (" + t.whereabouts + ")");
    return s;
}

DumpTarget::DumpTarget(MemorySource& mem, const std::vector<Thread>& tasks, uint64_t slide)
    : mem_(mem), slide_(slide) {
    int best_cpu = 1 << 30;
    for (const auto& t : tasks) {
        threads_.push_back({t.id, t.name, describe_thread_state(t), t.regs});
        if (t.on_cpu && t.cpu < best_cpu) {
            best_cpu = t.cpu;
            stop_ = t.id;
        }
    }
    if (best_cpu == 1 << 30 && !threads_.empty()) stop_ = threads_.front().tid;
}

}  // namespace kq
