// The in-use report of one module: evidence, coverage, verdict.
#pragma once
#include <functional>
#include <list>
#include <string>
#include <vector>

#include "inuse/evidence.h"
#include "kernel/kernel.h"
#include "kernel/kernel_ref.h"
#include "unwinder/frame.h"

namespace kq {

// One task's stack as the unwinder gave it, and the validated return
// addresses a scan found outside its frames.
struct ThreadStack {
    const Thread* thread = nullptr;
    std::vector<Frame> frames;
    std::vector<uint64_t> scanned;  // return addresses found by the stack scan only
    bool scan_done = false;
};

struct InuseInput {
    const Module* module = nullptr;
    std::vector<ThreadStack> stacks;   // every task of the kernel
    std::list<Thread> reread;          // tasks read anew (KernelSystem::reread_thread) that stacks point to
    size_t tasks_total = 0;            // how many tasks the kernel has (stacks may be fewer)
    Survey survey;                     // what the kernel subsystem providers found
    // Evidence and coverage classified elsewhere (the memory reference scan),
    // taken as they are.
    std::vector<Evidence> extra_evidence;
    std::vector<Coverage> extra_coverage;
    // Names an address for the report ("" if unknown).
    std::function<std::string(uint64_t)> symbolize;
};

struct Report {
    std::string module;
    std::vector<Evidence> evidence;
    std::vector<Coverage> coverage;
    Verdict verdict = Verdict::unknown;
    std::vector<std::string> reasons;  // why this verdict, one line each
};

// Classifies everything that points into the module and decides the verdict:
// never SAFE unless every provider covered everything.
Report analyze(const InuseInput& in);

// The verdict for given evidence and coverage, with its reasons.
Verdict decide(const std::vector<Evidence>& ev, const std::vector<Coverage>& cov, std::vector<std::string>* reasons);

}  // namespace kq
