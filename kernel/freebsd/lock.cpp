// Provider "locks": every lock that is held or has waiters and that the
// kernel lets us find:
//  - the lock of every thread blocked in a turnstile (td_blocked ->
//    ts_lockobj: mutexes and rw locks), with the turnstile's owner and every
//    thread blocked on it;
//  - every lock object in a module's data (its softc, its globals): found by
//    scanning the module's data sections for initialized lock_objects of a
//    known class (lo_flags, lock_classes[]) with a name, then read by the
//    class's lock word (mtx_lock, sx_lock, rw_lock, lk_lock).
// Threads asleep on an sx or lockmgr lock are sleep channels (sleepqueue.cpp).
// The lock is the reference's object and its name its data: both are
// touched by whoever takes, releases or shows the lock.
#include <cstring>
#include <map>
#include <set>

#include "kernel/freebsd/providers.h"

namespace kq::fbsd {
namespace {

// sys/lock.h: lo_flags (ABI constants, not in DWARF).
constexpr uint32_t LO_INITIALIZED = 0x00010000;
constexpr uint32_t LO_CLASSMASK = 0x0f000000;
constexpr int LO_CLASSSHIFT = 24;
constexpr uint32_t LO_UNUSED = 0xc0000000;
constexpr uint64_t kMaxScan = 64ull << 20;

// How a class's lock word reads (sys/mutex.h, sx.h, rwlock.h, lockmgr.h).
enum class Word : uint8_t { none, mtx, sx, rw, lockmgr };

struct Class {
    std::string name;
    Word word = Word::none;
};

std::vector<Class> lock_classes(const FreebsdKernel& k) {
    std::vector<Class> out;
    const ElfSymbol* s = k.image().symbol("lock_classes");
    if (!s) return out;
    const uint64_t n = s->size ? std::min<uint64_t>(s->size / 8, 16) : 16;
    for (uint64_t i = 0; i < n; ++i) {
        Class c;
        if (auto p = k.mem().read_u64(s->value + 8 * i); p && *p) {
            c.name = k.read_name(*p, "lock_class", "lc_name");
            if (c.name == "sleep mutex" || c.name == "spin mutex") c.word = Word::mtx;
            else if (c.name == "sx") c.word = Word::sx;
            else if (c.name == "rw") c.word = Word::rw;
            else if (c.name == "lockmgr") c.word = Word::lockmgr;
        }
        out.push_back(std::move(c));
    }
    return out;
}

// What a lock word says: held (by an owner thread, or shared), waited for.
struct State {
    bool held = false, waiters = false, shared = false;
    uint64_t owner = 0;  // struct thread of an exclusive owner
    std::string text;    // "held by ...", "held shared"
};

std::optional<State> read_state(const FreebsdKernel& k, uint64_t lock, Word w) {
    const char* type = nullptr;
    const char* member = nullptr;
    switch (w) {
        case Word::mtx: type = "mtx", member = "mtx_lock"; break;
        case Word::sx: type = "sx", member = "sx_lock"; break;
        case Word::rw: type = "rwlock", member = "rw_lock"; break;
        case Word::lockmgr: type = "lock", member = "lk_lock"; break;
        case Word::none: return std::nullopt;
    }
    auto v = k.read_ptr(lock, type, member);
    if (!v) return std::nullopt;
    State s;
    if (w == Word::mtx) {
        // MTX_UNOWNED 0x4, MTX_DESTROYED 0x6; else owner | RECURSED 0x1 | CONTESTED 0x2.
        if (*v == 0x4 || *v == 0x6) return s;
        s.held = true;
        s.owner = *v & ~uint64_t(0x7);
        s.waiters = *v & 0x2;
        return s;
    }
    // sx, rw and lockmgr: 0x1 is "shared, no sharers" (unlocked), 0x6 destroyed;
    // bit 0 set: shared, its count above the flags; clear: the owner thread.
    // Waiter bits 0x2 and 0x4.
    if (*v == 0x1 || *v == 0x6) return s;
    s.waiters = *v & 0x6;
    const uint64_t flagmask = w == Word::sx ? 0x1f : 0x0f;
    if (*v & 0x1) {
        s.shared = true;
        s.held = (*v & ~flagmask) != 0;
    } else {
        s.held = true;
        s.owner = *v & ~flagmask;
        if (w == Word::lockmgr && s.owner == (~uint64_t(0) & ~flagmask)) s.owner = 0;  // LK_KERNPROC: disowned
    }
    return s;
}

struct Seen {
    std::string cls;
    State state;
    std::set<int64_t> waiters;  // threads blocked in its turnstile
    uint64_t ts_owner = 0;
};

}  // namespace

void survey_locks(const FreebsdSurveyContext& ctx, Survey& out) {
    const FreebsdKernel& k = ctx.kernel;
    MemorySource& mem = k.mem();
    const std::vector<Class> classes = lock_classes(k);
    WalkProblems problems;
    std::map<uint64_t, Seen> locks;  // lock_object -> what is known of it

    auto class_of = [&](uint64_t lo) -> const Class* {
        auto f = k.read_int(lo, "lock_object", "lo_flags");
        if (!f) return nullptr;
        const uint32_t flags = static_cast<uint32_t>(*f);
        const size_t idx = (flags & LO_CLASSMASK) >> LO_CLASSSHIFT;
        if (!(flags & LO_INITIALIZED) || (flags & LO_UNUSED) || idx >= classes.size() || classes[idx].name.empty())
            return nullptr;
        return &classes[idx];
    };

    // Turnstiles: the locks threads are blocked on.
    size_t blocked = 0;
    for (const Thread& t : ctx.threads.threads) {
        auto ts = k.read_ptr(t.task, "thread", "td_blocked");
        if (!ts) {
            problems.add(task_label(t) + ": td_blocked unreadable");
            continue;
        }
        if (!*ts) continue;
        ++blocked;
        auto lo = k.read_ptr(*ts, "turnstile", "ts_lockobj");
        if (!lo || !*lo) {
            problems.add(task_label(t) + ": its turnstile " + addr_text(*ts) + " is unreadable");
            continue;
        }
        Seen& s = locks[*lo];
        s.waiters.insert(t.id);
        s.ts_owner = k.read_ptr(*ts, "turnstile", "ts_owner").value_or(0);
    }

    // Lock objects in modules' data.
    size_t scanned = 0, found = 0;
    if (classes.empty()) {
        problems.add("no lock_classes: lock objects in modules' data not looked for");
    } else {
        const uint64_t o_flags = k.off("lock_object", "lo_flags");
        const uint64_t o_name = k.off("lock_object", "lo_name");
        const uint64_t lo_size = k.types().size_or_throw("lock_object");
        for (const Module& m : ctx.modules.modules) {
            for (const Range& r : m.ranges) {
                if ((r.what != "data" && r.what != "image") || r.size > kMaxScan) continue;
                std::vector<uint8_t> bytes(r.size);
                const size_t got = mem.read(r.start, bytes.data(), bytes.size());
                if (got < bytes.size())
                    problems.add(m.name + ": data unreadable from " + addr_text(r.start + got));
                scanned += got;
                for (uint64_t o = (8 - r.start % 8) % 8; o + lo_size + 8 <= got; o += 8) {
                    uint32_t flags;
                    memcpy(&flags, bytes.data() + o + o_flags, 4);
                    if (!(flags & LO_INITIALIZED) || (flags & LO_UNUSED)) continue;
                    uint64_t name;
                    memcpy(&name, bytes.data() + o + o_name, 8);
                    const uint64_t lo = r.start + o;
                    const Class* c = class_of(lo);
                    if (!c || c->word == Word::none || !name) continue;
                    std::string n = k.read_cstr(name, 64);
                    bool printable = !n.empty();
                    for (unsigned char ch : n) printable &= ch >= 0x20 && ch < 0x7f;
                    if (!printable) continue;
                    ++found;
                    auto st = read_state(k, lo, c->word);
                    if (st && (st->held || st->waiters)) locks[lo].state = *st, locks[lo].cls = c->name;
                }
            }
        }
    }

    for (auto& [lo, s] : locks) {
        const Class* c = class_of(lo);
        if (s.cls.empty() && c) {
            s.cls = c->name;
            if (auto st = read_state(k, lo, c->word)) s.state = *st;
        }
        KernelRef r;
        r.kind = RefKind::lock;
        r.object = lo;
        r.data = k.read_ptr(lo, "lock_object", "lo_name").value_or(0);
        r.subject = (s.cls.empty() ? std::string("lock") : s.cls) + " " +
                    (r.data ? k.read_cstr(r.data, 64) : addr_text(lo));
        const uint64_t owner = s.state.owner ? s.state.owner : s.ts_owner;
        if (owner) {
            r.detail = "held by " + thread_label(ctx, owner);
            if (auto id = thread_id(ctx, owner)) r.tasks.push_back(*id);
        } else if (s.state.shared && s.state.held) {
            r.detail = "held shared";
        } else {
            r.detail = "held";
        }
        if (!s.waiters.empty()) {
            r.detail += ", " + std::to_string(s.waiters.size()) + " blocked in its turnstile";
            r.tasks.insert(r.tasks.end(), s.waiters.begin(), s.waiters.end());
        } else if (s.state.waiters) {
            r.detail += ", with waiters";
        }
        out.refs.push_back(std::move(r));
    }
    Coverage c{"locks",
               std::to_string(blocked) + " threads blocked in turnstiles; " + std::to_string(found) +
                   " lock objects in " + std::to_string(scanned) + " bytes of modules' data; " +
                   std::to_string(locks.size()) + " held or waited for",
               problems.empty(), problems.summary()};
    out.coverage.push_back(std::move(c));
}

}  // namespace kq::fbsd
