// What a guarded unload and a quiesce decide from an in-use report: the
// MOD_QUIESCE check done the hard way, at the kernel's own unload path.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "inuse/report.h"

namespace kq {

struct UnloadStep {
    bool proceed = false;
    std::vector<std::string> reasons;  // one line each: why it proceeds or not
};

// At the unload's entry, before the module's exit function runs. Without
// `force` SAFE proceeds, and so does a module the user quiesced that has
// drained (`quiesced`: its users are gone; what is left is its own, which
// its exit function undoes). With `force` the kernel's own refusals
// (refcount, state) are skipped, and so is what the exit function exists
// to undo (its timers, work, kthreads, registrations: the check at the
// free catches what it forgets); what no exit function can undo still
// vetoes: a user task inside the module, an open file, a module using it.
// `user_task(tid)`: the task is not a kernel thread.
UnloadStep decide_unload_entry(const Report& r, bool force, bool quiesced, const std::function<bool(int64_t)>& user_task);

// Where the module's memory is about to be freed (its exit function ran):
// anything still reaching into it is a use-after-free in the making. Not
// proceeding means: keep the memory (guard).
UnloadStep decide_free(const Report& r);

// A quiesced module is drained when its users are gone: the kernel's
// accounting would let it go (refcount, dependents; not the state, which
// the quiesce set) and nothing is left that no exit function can undo.
// What is the module's own (its timers, kthreads, registrations) its exit
// undoes. `still`: what holds it, one line each.
bool drained(const Report& r, const std::function<bool(int64_t)>& user_task, std::vector<std::string>* still);

}  // namespace kq
