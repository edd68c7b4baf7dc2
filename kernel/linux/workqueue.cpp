// Provider "workqueues": work items queued or running on every worker pool.
//
// Pools: each CPU's cpu_worker_pools (per-CPU array of NR_STD_WORKER_POOLS
// struct worker_pool, the count from the symbol's size) and the unbound
// pools in unbound_pool_hash (hashed by `hash_node`); together they are every
// pool worker_pool_idr numbers. For each pool:
//   - `worklist`: pending work_structs linked by `entry`;
//   - `busy_hash`: the workers running a work item (struct worker by
//     `hentry`): current_work / current_func, the kworker task, and the work
//     items scheduled on that worker behind it (`scheduled`).
// Then every workqueue on `workqueues`: each pool_workqueue's inactive_works
// (queued beyond max_active, not yet on a pool's worklist).
//
// Delayed work whose timer is still pending is on no pool yet: the timers
// provider reports it (a timer whose function is delayed_work_timer_fn).
#include <cstdio>
#include <optional>
#include <unordered_map>

#include "kernel/linux/providers.h"
#include "kernel/list_walk.h"

namespace kq {
namespace {

constexpr size_t kMaxItems = 1u << 20;  // per list: beyond this the input is not a kernel's

struct WorkLayout {
    uint64_t pool_size, nr_std_pools, pool_worklist, pool_busy_hash, busy_buckets, pool_id, pool_hash_node;
    uint64_t unbound_buckets;
    uint64_t w_hentry, w_current_work, w_current_func, w_current_pwq, w_scheduled, w_task;
    uint64_t work_data, work_entry, work_func;
    uint64_t pwq_wq, pwq_inactive, pwq_node;
    uint64_t wq_list, wq_pwqs, wq_name, wq_name_len;
    uint64_t task_pid, task_comm;
    uint64_t data_pwq_flag, data_mask;

    explicit WorkLayout(const LinuxKernel& k) {
        auto& t = k.types();
        const char* P = "worker_pool";
        pool_size = t.size_or_throw(P);
        pool_worklist = k.off(P, "worklist");
        pool_busy_hash = k.off(P, "busy_hash");
        busy_buckets = array_len(k, P, "busy_hash");
        pool_id = k.off(P, "id");
        pool_hash_node = k.off(P, "hash_node");
        nr_std_pools = symbol_size(k, "cpu_worker_pools") / pool_size;
        uint64_t head = t.size_or_throw("hlist_head");
        unbound_buckets = symbol_size(k, "unbound_pool_hash") / head;
        if (nr_std_pools == 0 || nr_std_pools > 16 || unbound_buckets == 0 || unbound_buckets > 65536)
            throw Error("cpu_worker_pools / unbound_pool_hash: sizes do not fit worker_pool / hlist_head");
        const char* W = "worker";
        w_hentry = k.off(W, "hentry");
        w_current_work = k.off(W, "current_work");
        w_current_func = k.off(W, "current_func");
        w_current_pwq = k.off(W, "current_pwq");
        w_scheduled = k.off(W, "scheduled");
        w_task = k.off(W, "task");
        work_data = k.off("work_struct", "data");
        work_entry = k.off("work_struct", "entry");
        work_func = k.off("work_struct", "func");
        pwq_wq = k.off("pool_workqueue", "wq");
        pwq_inactive = k.off("pool_workqueue", "inactive_works");
        pwq_node = k.off("pool_workqueue", "pwqs_node");
        wq_list = k.off("workqueue_struct", "list");
        wq_pwqs = k.off("workqueue_struct", "pwqs");
        wq_name = k.off("workqueue_struct", "name");
        wq_name_len = t.member_size("workqueue_struct", "name").value_or(24);
        task_pid = k.off("task_struct", "pid");
        task_comm = k.off("task_struct", "comm");
        // work_struct.data holds the pool_workqueue when WORK_STRUCT_PWQ is set.
        data_pwq_flag = t.enumerator("WORK_STRUCT_PWQ").value_or(0);
        data_mask = static_cast<uint64_t>(t.enumerator("WORK_STRUCT_WQ_DATA_MASK").value_or(0));
    }

    static uint64_t array_len(const LinuxKernel& k, const char* type, const std::string& member) {
        uint64_t all = k.types().member_size(type, member).value_or(0);
        uint64_t one = k.types().member_size(type, member + "[0]").value_or(0);
        if (!all || !one) throw Error(std::string(type) + "." + member + ": no array size in DWARF");
        return all / one;
    }
    static uint64_t symbol_size(const LinuxKernel& k, const char* name) {
        const ElfSymbol* s = k.vmlinux().symbol(name);
        if (!s || !s->size)
            throw Error(std::string("symbol ") + name + " not found (or unsized) in " + k.vmlinux().path());
        return s->size;
    }
};

class WorkReader {
public:
    WorkReader(const SurveyContext& ctx, Survey& out) : k_(ctx.kernel), mem_(k_.mem()), L_(k_), out_(out) {
        for (const auto& t : ctx.threads) tasks_[t.task] = &t;
    }

    void run() {
        int ncpu = k_.nr_cpus();
        int cpus = 0;
        for (int cpu = 0; cpu < ncpu; ++cpu) {
            uint64_t pools = k_.per_cpu("cpu_worker_pools", cpu);
            size_t before = problems_.size();
            for (uint64_t i = 0; i < L_.nr_std_pools; ++i)
                pool(pools + i * L_.pool_size, "CPU " + std::to_string(cpu) + " worker pool " + std::to_string(i));
            cpus += problems_.size() == before;
        }
        size_t unbound = 0;
        uint64_t hash = k_.symbol("unbound_pool_hash");
        std::vector<uint64_t> heads(L_.unbound_buckets);
        if (!mem_.read_exact(hash, heads.data(), heads.size() * 8)) {
            problems_.add("unbound_pool_hash unreadable at " + addr_text(hash));
            heads.clear();
        }
        for (size_t b = 0; b < heads.size(); ++b) {
            if (!heads[b]) continue;
            auto w = walk_hlist(mem_, heads[b], L_.pool_hash_node, [&](uint64_t p) {
                ++unbound;
                int32_t id = mem_.read_as<int32_t>(p + L_.pool_id).value_or(-1);
                pool(p, "unbound worker pool " + std::to_string(id));
                return true;
            }, 65536);
            problems_.check("unbound_pool_hash bucket " + std::to_string(b), w);
        }
        size_t wqs = inactive();

        std::string covered = std::to_string(cpus) + "/" + std::to_string(ncpu) + " CPUs' worker pools (" +
                std::to_string(L_.nr_std_pools) + " each), " + std::to_string(unbound) + " unbound pools, " +
                std::to_string(wqs) + " workqueues: " + std::to_string(pending_) + " pending, " +
                std::to_string(running_) + " running, " + std::to_string(inactive_) +
                " inactive work items; delayed work with its timer pending: see timers";
        out_.coverage.push_back({"workqueues", covered, problems_.empty(), problems_.summary()});
    }

private:
    void pool(uint64_t p, const std::string& subject) {
        auto w = walk_list(mem_, p + L_.pool_worklist, L_.work_entry, [&](uint64_t work) {
            ++pending_;
            item(work, subject, "pending", {});
            return true;
        }, kMaxItems);
        problems_.check(subject + " worklist", w);

        std::vector<uint64_t> heads(L_.busy_buckets);
        if (!mem_.read_exact(p + L_.pool_busy_hash, heads.data(), heads.size() * 8)) {
            problems_.add(subject + ": busy_hash unreadable at " + addr_text(p + L_.pool_busy_hash));
            return;
        }
        for (size_t b = 0; b < heads.size(); ++b) {
            if (!heads[b]) continue;
            auto bw = walk_hlist(mem_, heads[b], L_.w_hentry, [&](uint64_t worker) {
                busy(worker, subject);
                return true;
            }, 65536);
            problems_.check(subject + " busy_hash bucket " + std::to_string(b), bw);
        }
    }

    // A worker running a work item, and the items scheduled behind it.
    void busy(uint64_t worker, const std::string& subject) {
        auto work = mem_.read_u64(worker + L_.w_current_work);
        auto func = mem_.read_u64(worker + L_.w_current_func);
        auto task = mem_.read_u64(worker + L_.w_task);
        if (!work || !func || !task) {
            problems_.add(subject + ": worker at " + addr_text(worker) + " unreadable");
            return;
        }
        auto [pid, comm] = task_of(*task);
        std::string who = "task " + std::to_string(pid) + " (" + comm + ")";
        KernelRef r;
        r.kind = RefKind::work;
        r.func = *func;
        r.object = *work;
        r.subject = subject;
        r.detail = "running in " + who;
        if (auto pwq = mem_.read_u64(worker + L_.w_current_pwq); pwq && *pwq)
            r.detail += on_workqueue(*pwq);
        r.tasks = {pid};
        out_.refs.push_back(std::move(r));
        ++running_;
        auto w = walk_list(mem_, worker + L_.w_scheduled, L_.work_entry, [&](uint64_t item_addr) {
            ++pending_;
            item(item_addr, subject, "scheduled after the work running in " + who, {pid});
            return true;
        }, kMaxItems);
        problems_.check(subject + ": scheduled list of " + who, w);
    }

    // Work queued beyond a workqueue's max_active: on its pool_workqueues.
    size_t inactive() {
        size_t n = 0;
        auto w = walk_list(mem_, k_.symbol("workqueues"), L_.wq_list, [&](uint64_t wq) {
            ++n;
            std::string subject = "workqueue " + mem_.read_cstr(wq + L_.wq_name, L_.wq_name_len);
            auto pw = walk_list(mem_, wq + L_.wq_pwqs, L_.pwq_node, [&](uint64_t pwq) {
                auto iw = walk_list(mem_, pwq + L_.pwq_inactive, L_.work_entry, [&](uint64_t work) {
                    ++inactive_;
                    item(work, subject, "inactive (beyond max_active)", {});
                    return true;
                }, kMaxItems);
                problems_.check(subject + " inactive works", iw);
                return true;
            }, 65536);
            problems_.check(subject + " pool_workqueues", pw);
            return true;
        }, 65536);
        problems_.check("workqueues list", w);
        return n;
    }

    void item(uint64_t work, const std::string& subject, const std::string& state, std::vector<int64_t> tasks) {
        KernelRef r;
        r.kind = RefKind::work;
        r.object = work;
        r.subject = subject;
        r.tasks = std::move(tasks);
        auto func = mem_.read_u64(work + L_.work_func);
        if (!func) {
            problems_.add(subject + ": work_struct at " + addr_text(work) + " unreadable");
            r.detail = "unreadable work_struct";
        } else {
            r.func = *func;
            r.detail = state;
            auto data = mem_.read_u64(work + L_.work_data);
            if (data && L_.data_pwq_flag && L_.data_mask && (*data & L_.data_pwq_flag))
                r.detail += on_workqueue(*data & L_.data_mask);
        }
        out_.refs.push_back(std::move(r));
    }

    std::string on_workqueue(uint64_t pwq) {
        auto wq = mem_.read_u64(pwq + L_.pwq_wq);
        if (!wq || !*wq) return "";
        std::string name = mem_.read_cstr(*wq + L_.wq_name, L_.wq_name_len);
        return name.empty() ? "" : " on workqueue " + name;
    }

    std::pair<int64_t, std::string> task_of(uint64_t task) {
        if (auto it = tasks_.find(task); it != tasks_.end()) return {it->second->id, it->second->name};
        int64_t pid = mem_.read_as<int32_t>(task + L_.task_pid).value_or(-1);
        return {pid, mem_.read_cstr(task + L_.task_comm, 16)};
    }

    const LinuxKernel& k_;
    MemorySource& mem_;
    WorkLayout L_;
    Survey& out_;
    std::unordered_map<uint64_t, const Thread*> tasks_;
    size_t pending_ = 0, running_ = 0, inactive_ = 0;
    WalkProblems problems_;
};

}  // namespace

void survey_workqueues(const SurveyContext& ctx, Survey& out) { WorkReader(ctx, out).run(); }

}  // namespace kq
