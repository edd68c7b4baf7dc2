// kmod dmesg: the kernel log from the dump's printk ringbuffer.
#include "kernel/linux/printk.h"
#include "plugin/commands.h"
#include "plugin/json.h"
#include "plugin/session.h"

namespace kq {
namespace {

void dmesg(lldb::SBDebugger& dbg, const Args& args, std::string& out) {
    if (!args.positional.empty()) throw Error("usage: kmod dmesg [--tail N] [--json]");
    size_t tail = 0;
    if (std::string t = args.value("--tail"); !t.empty()) {
        auto n = parse_number(t);
        if (!n || *n == 0) throw Error("--tail wants a positive number, not '" + t + "'");
        tail = static_cast<size_t>(*n);
    }
    lldb::SBTarget target = dbg.GetSelectedTarget();
    Session& s = Session::of(target);
    KernelLog log = read_kernel_log(s.linux_system().kernel());
    size_t from = tail && tail < log.records.size() ? log.records.size() - tail : 0;
    if (args.flag("--json")) {
        Json j;
        j.begin_object()
            .field("records", static_cast<uint64_t>(log.records.size()))
            .field("lost", log.lost);
        j.key("warnings").begin_array();
        for (const auto& w : log.warnings) j.value(w);
        j.end_array();
        j.key("log").begin_array();
        for (size_t i = from; i < log.records.size(); ++i) {
            const LogRecord& r = log.records[i];
            j.begin_object().field("seq", r.seq).field("ts_nsec", r.ts_nsec);
            j.key("level");
            if (r.level < 0) j.null(); else j.value(r.level);
            j.field("text", r.text).end_object();
        }
        j.end_array().end_object();
        out = j.str() + "\n";
        return;
    }
    for (size_t i = from; i < log.records.size(); ++i) out += format_log_record(log.records[i]);
    if (log.lost) out += "(" + std::to_string(log.lost) + " records in the ring could not be read)\n";
    for (const auto& w : log.warnings) out += "warning: " + w + "\n";
}

}  // namespace

void register_dmesg(lldb::SBCommand& kmod) {
    add_command(kmod, {"dmesg", "The kernel log from the dump (the printk ringbuffer).",
                       "kmod dmesg [--tail N] [--json]\n"
                       "  --tail N  only the last N records\n"
                       "  --json    machine-readable output: seq, ts_nsec, level and text of each record\n"
                       "Records are read from the ringbuffer `prb` (Linux 5.10 and later) with layouts\n"
                       "from DWARF; each line is prefixed with its time since boot, as dmesg does.",
                       {"--json"}, {"--tail"}, dmesg});
}

}  // namespace kq
