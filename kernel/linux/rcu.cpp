// Provider "rcu callbacks": every RCU callback queued on every CPU, waiting
// for a grace period or to be invoked.
//
// Read, per CPU:
// - rcu_data.cblist (per-CPU rcu_data, struct rcu_segcblist): `head` starts a
//   NULL-terminated chain of rcu_head (callback_head: next, func); tails[i]
//   points to the `next` word ending segment i (DONE, WAIT, NEXT_READY, NEXT;
//   the count from DWARF), to `head` while the segments before are empty;
//   `len` counts the callbacks. With RCU_NOCB_CPU, rcu_data.nocb_bypass too
//   (struct rcu_cblist: head, tail, len).
// - the RCU Tasks flavors (rcu_tasks, rcu_tasks_rude, rcu_tasks_trace: struct
//   rcu_tasks whose per-CPU rtpcpu is a struct rcu_tasks_percpu with its own
//   cblist), those this kernel has.
// - kfree_rcu batching (per-CPU krc, struct kfree_rcu_cpu): the `head` chain
//   and the pages of pointers (bkvhead[], struct kvfree_rcu_bulk_data:
//   nr_records, next, records[]) waiting to be handed over, and in each
//   krw_arr[] batch the head_free chain and bkvhead_free[] pages waiting for
//   their grace period. These free memory and call nothing.
//
// Each chain is walked bounded by its len (a few more allowed: a CPU may be
// queueing one) and a hard cap, and cycle-safe. A chain that ends before the
// word its last tail points to has lost callbacks, and a len larger than the
// chain means callbacks were taken off to be invoked (rcu_do_batch keeps them
// on its stack): either is a gap for that CPU.
//
// Reported: one rcu_callback reference per callback, its func as func and the
// rcu_head as object, "CPU n rcu_data" as subject. A func below 4096 is not a
// function but kfree_rcu()'s offset of the rcu_head in the object to free:
// such a callback has only its object. Objects in kfree_rcu pages are
// reported as objects, without a function.
//
// Not read: SRCU callbacks (queued per srcu_struct, of which the kernel keeps
// no list), and callbacks already taken off a list to be invoked.
#include <algorithm>
#include <optional>
#include <unordered_set>
#include <vector>

#include "kernel/linux/providers.h"
#include "kernel/list_walk.h"

namespace kq {
namespace {

constexpr size_t kMaxCallbacks = 1u << 20;  // over all lists: beyond this the input is not a kernel's
constexpr size_t kLenSlack = 16;            // callbacks past `len` before the chain counts as broken
constexpr uint64_t kMaxOffset = 4096;       // kfree_rcu: func values below this are offsets
constexpr uint64_t kMaxBulkRecords = 4096 / 8;  // records in one page of kvfree_rcu_bulk_data
constexpr size_t kMaxPages = 1u << 12;          // pages in one chain of them

struct RcuLayout {
    uint64_t cb_func;                          // in callback_head (next is its first member)
    uint64_t seg_head, seg_tails, seg_len, nr_segs;  // in rcu_segcblist
    uint64_t cblist;                           // in rcu_data
    std::optional<uint64_t> bypass, list_head, list_tail, list_len;  // rcu_data.nocb_bypass, rcu_cblist
    // RCU Tasks
    std::optional<uint64_t> rtpcpu, rtp_cblist;
    // kfree_rcu batching
    std::optional<uint64_t> krc_head, krc_bkv, krc_krw, krw_head_free, krw_bkv_free, bulk_nr, bulk_next,
            bulk_records;
    uint64_t nr_bkv = 0, nr_krw = 0, krw_size = 0;

    explicit RcuLayout(const LinuxKernel& k) {
        auto& t = k.types();
        if (k.off("callback_head", "next") != 0)
            throw Error("callback_head.next is not its first member in " + t.file());
        cb_func = k.off("callback_head", "func");
        seg_head = k.off("rcu_segcblist", "head");
        seg_tails = k.off("rcu_segcblist", "tails");
        seg_len = k.off("rcu_segcblist", "len");
        nr_segs = t.member_size("rcu_segcblist", "tails").value_or(0) / 8;
        if (!nr_segs) throw Error("rcu_segcblist.tails: no array size in DWARF of " + t.file());
        cblist = k.off("rcu_data", "cblist");
        bypass = t.offset("rcu_data", "nocb_bypass");
        list_head = t.offset("rcu_cblist", "head");
        list_tail = t.offset("rcu_cblist", "tail");
        list_len = t.offset("rcu_cblist", "len");
        rtpcpu = t.offset("rcu_tasks", "rtpcpu");
        rtp_cblist = t.offset("rcu_tasks_percpu", "cblist");
        krc_head = t.offset("kfree_rcu_cpu", "head");
        krc_bkv = t.offset("kfree_rcu_cpu", "bkvhead");
        krc_krw = t.offset("kfree_rcu_cpu", "krw_arr");
        krw_head_free = t.offset("kfree_rcu_cpu_work", "head_free");
        krw_bkv_free = t.offset("kfree_rcu_cpu_work", "bkvhead_free");
        bulk_nr = t.offset("kvfree_rcu_bulk_data", "nr_records");
        bulk_next = t.offset("kvfree_rcu_bulk_data", "next");
        bulk_records = t.offset("kvfree_rcu_bulk_data", "records");
        nr_bkv = t.member_size("kfree_rcu_cpu", "bkvhead").value_or(0) / 8;
        krw_size = t.size("kfree_rcu_cpu_work").value_or(0);
        if (krw_size) nr_krw = t.member_size("kfree_rcu_cpu", "krw_arr").value_or(0) / krw_size;
    }
    bool has_bypass() const { return bypass && list_head && list_tail && list_len; }
    bool has_tasks() const { return rtpcpu && rtp_cblist; }
    bool has_kfree() const {
        return krc_head && krc_bkv && krc_krw && krw_head_free && krw_bkv_free && bulk_nr && bulk_next &&
               bulk_records && nr_bkv && nr_krw;
    }
};

// What segment i of an rcu_segcblist holds (RCU_DONE_TAIL ... RCU_NEXT_TAIL).
std::string segment_name(uint64_t i, uint64_t n) {
    static const char* const four[] = {"grace period over, to be invoked", "waiting for the current grace period",
                                       "waiting for the next grace period", "queued, no grace period yet"};
    if (n == 4 && i < 4) return four[i];
    return i < n ? "segment " + std::to_string(i) : "just queued";
}

class RcuReader {
public:
    RcuReader(const SurveyContext& ctx, Survey& out) : k_(ctx.kernel), mem_(k_.mem()), L_(k_), out_(out) {}

    void run() {
        std::vector<std::pair<std::string, uint64_t>> flavors;  // RCU Tasks: name, struct rcu_tasks
        if (L_.has_tasks())
            for (const char* f : {"rcu_tasks", "rcu_tasks_rude", "rcu_tasks_trace"})
                if (auto a = k_.find_symbol(f)) flavors.emplace_back(f, *a);
        const bool kfree = L_.has_kfree() && k_.find_symbol("krc");
        int ncpu = k_.nr_cpus();
        int whole = 0;
        for (int cpu = 0; cpu < ncpu; ++cpu) {
            std::string on = "CPU " + std::to_string(cpu) + " ";
            uint64_t rdp = k_.per_cpu("rcu_data", cpu);
            bool ok = segcblist(on + "rcu_data", rdp + L_.cblist);
            if (L_.has_bypass()) ok &= cblist(on + "rcu_data nocb_bypass", rdp + *L_.bypass);
            for (const auto& [name, rtp] : flavors) {
                auto pcpu = mem_.read_u64(rtp + *L_.rtpcpu);
                if (!pcpu) {
                    problems_.add(name + ": rtpcpu unreadable");
                    ok = false;
                    continue;
                }
                ok &= segcblist(on + name, *pcpu + per_cpu_offset(cpu) + *L_.rtp_cblist);
            }
            if (kfree) ok &= kfree_rcu(on + "kfree_rcu", k_.per_cpu("krc", cpu));
            whole += ok;
        }
        std::string covered = std::to_string(whole) + "/" + std::to_string(ncpu) + " CPUs' rcu_data callback lists";
        if (L_.has_bypass()) covered += " (and nocb bypass)";
        for (const auto& f : flavors) covered += ", " + f.first;
        if (kfree) covered += ", kfree_rcu batches";
        covered += "; " + std::to_string(callbacks_) + " queued callbacks";
        if (offsets_) covered += " (" + std::to_string(offsets_) + " of them kfree_rcu offsets)";
        if (kfree) covered += ", " + std::to_string(objects_) + " objects in kfree_rcu pages";
        covered += "; not read: SRCU callbacks";
        if (L_.has_tasks() && flavors.empty()) covered += ", RCU Tasks (not in this kernel)";
        if (!kfree) covered += ", kfree_rcu batching (not in this kernel's DWARF)";
        out_.coverage.push_back({"rcu callbacks", covered, problems_.empty(), problems_.summary()});
    }

private:
    uint64_t per_cpu_offset(int cpu) const {
        return k_.read_u64_or_throw(k_.symbol("__per_cpu_offset") + 8ull * cpu, "__per_cpu_offset");
    }

    size_t left() const {
        size_t n = callbacks_ + objects_;
        return kMaxCallbacks > n ? kMaxCallbacks - n : 0;
    }

    // A segmented callback list (struct rcu_segcblist at `addr`).
    bool segcblist(const std::string& subject, uint64_t addr) {
        std::vector<uint64_t> tails(L_.nr_segs);
        auto first = mem_.read_u64(addr + L_.seg_head);
        auto len = mem_.read_as<int64_t>(addr + L_.seg_len);
        if (!first || !len || !mem_.read_exact(addr + L_.seg_tails, tails.data(), tails.size() * 8)) {
            problems_.add(subject + ": rcu_segcblist unreadable at " + addr_text(addr));
            return false;
        }
        return chain(subject, addr + L_.seg_head, *first, tails, *len, true);
    }

    // A simple callback list (struct rcu_cblist at `addr`).
    bool cblist(const std::string& subject, uint64_t addr) {
        auto first = mem_.read_u64(addr + *L_.list_head);
        auto tail = mem_.read_u64(addr + *L_.list_tail);
        auto len = mem_.read_as<int64_t>(addr + *L_.list_len);
        if (!first || !tail || !len) {
            problems_.add(subject + ": rcu_cblist unreadable at " + addr_text(addr));
            return false;
        }
        return chain(subject, addr + *L_.list_head, *first, {*tail}, *len, false);
    }

    // The chain of rcu_head from `first` (read from the word at `head`),
    // whose segments end at the `next` words `tails` point to; len: the
    // callbacks the list counts (negative: not counted).
    bool chain(const std::string& subject, uint64_t head, uint64_t first, const std::vector<uint64_t>& tails,
               int64_t len, bool segmented) {
        // A list never initialized (a CPU that never came online) is all zeros.
        if (!first && std::all_of(tails.begin(), tails.end(), [](uint64_t t) { return t == 0; })) return true;
        size_t seg = 0;
        auto pass = [&](uint64_t word) {
            while (seg < tails.size() && tails[seg] == word) ++seg;
        };
        pass(head);
        size_t limit = std::min(left(), len >= 0 ? size_t(len) + kLenSlack : kMaxCallbacks);
        size_t n = 0;
        auto w = walk_hlist(mem_, first, 0, [&](uint64_t cb) {
            ++n;
            callback(cb, subject, segmented ? segment_name(seg, tails.size()) : "");
            pass(cb);  // its `next` word is at offset 0
            return true;
        }, limit);
        if (!problems_.check(subject, w)) return false;
        if (seg < tails.size()) {
            problems_.add(subject + ": the chain ends before its tail " + addr_text(tails[seg]) + " (callbacks lost)");
            return false;
        }
        if (len >= 0 && n < size_t(len)) {
            problems_.add(subject + ": len " + std::to_string(len) + " but " + std::to_string(n) +
                          " linked (callbacks being invoked are not seen)");
            return false;
        }
        return true;
    }

    void callback(uint64_t cb, const std::string& subject, const std::string& state) {
        ++callbacks_;
        KernelRef r{RefKind::rcu_callback, 0, cb, 0, subject, "", {}};
        auto fn = mem_.read_u64(cb + L_.cb_func);
        if (!fn) {
            problems_.add(subject + ": rcu_head at " + addr_text(cb) + " unreadable");
            r.detail = "unreadable rcu_head";
        } else if (*fn < kMaxOffset) {
            ++offsets_;
            r.detail = "kfree_rcu(): frees the object at " + addr_text(cb - *fn) + " (its rcu_head at offset " +
                       std::to_string(*fn) + "), no function";
        } else {
            r.func = *fn;
            r.detail = state;
        }
        if (!state.empty() && r.detail != state) r.detail += "; " + state;
        out_.refs.push_back(std::move(r));
    }

    // One CPU's kfree_rcu_cpu: chains and pages not yet handed over, then each
    // batch waiting for its grace period.
    bool kfree_rcu(const std::string& subject, uint64_t krc) {
        bool ok = rcu_heads(subject, krc + *L_.krc_head, "queued");
        for (uint64_t i = 0; i < L_.nr_bkv; ++i) ok &= pages(subject, krc + *L_.krc_bkv + 8 * i, "queued");
        for (uint64_t b = 0; b < L_.nr_krw; ++b) {
            uint64_t krw = krc + *L_.krc_krw + b * L_.krw_size;
            std::string batch = "batch " + std::to_string(b) + " waiting for its grace period";
            ok &= rcu_heads(subject, krw + *L_.krw_head_free, batch);
            for (uint64_t i = 0; i < L_.nr_bkv; ++i) ok &= pages(subject, krw + *L_.krw_bkv_free + 8 * i, batch);
        }
        return ok;
    }

    // A NULL-terminated chain of rcu_head from the pointer at `at`.
    bool rcu_heads(const std::string& subject, uint64_t at, const std::string& state) {
        auto first = mem_.read_u64(at);
        if (!first) {
            problems_.add(subject + ": unreadable at " + addr_text(at));
            return false;
        }
        auto w = walk_hlist(mem_, *first, 0, [&](uint64_t cb) {
            callback(cb, subject, state);
            return true;
        }, left());
        return problems_.check(subject + " (" + state + ")", w);
    }

    // Pages of object pointers (kvfree_rcu_bulk_data) from the pointer at `at`.
    bool pages(const std::string& subject, uint64_t at, const std::string& state) {
        std::unordered_set<uint64_t> seen;
        auto page = mem_.read_u64(at);
        for (; page && *page; page = mem_.read_u64(*page + *L_.bulk_next)) {
            if (!seen.insert(*page).second || seen.size() > kMaxPages) {
                problems_.add(subject + ": kvfree_rcu page chain loops or is too long at " + addr_text(*page));
                return false;
            }
            auto nr = mem_.read_u64(*page + *L_.bulk_nr);
            std::vector<uint64_t> rec(nr ? std::min(*nr, kMaxBulkRecords) : 0);
            if (!nr || *nr > kMaxBulkRecords ||
                !mem_.read_exact(*page + *L_.bulk_records, rec.data(), rec.size() * 8)) {
                problems_.add(subject + ": kvfree_rcu page at " + addr_text(*page) + " unreadable or implausible");
                return false;
            }
            for (uint64_t obj : rec) {
                ++objects_;
                out_.refs.push_back({RefKind::rcu_callback, 0, obj, 0, subject,
                                     "kvfree_rcu(): object to free, no function; " + state, {}});
            }
        }
        if (!page) {
            problems_.add(subject + ": unreadable kvfree_rcu page pointer");
            return false;
        }
        return true;
    }

    const LinuxKernel& k_;
    MemorySource& mem_;
    RcuLayout L_;
    Survey& out_;
    size_t callbacks_ = 0, offsets_ = 0, objects_ = 0;
    WalkProblems problems_;
};

}  // namespace

void survey_rcu(const SurveyContext& ctx, Survey& out) { RcuReader(ctx, out).run(); }

}  // namespace kq
