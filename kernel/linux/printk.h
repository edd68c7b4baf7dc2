// The kernel log as the dump holds it: the records of the printk
// ringbuffer (`prb`, Linux 5.10 and later), oldest first.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernel/linux/linux_kernel.h"

namespace kq {

struct LogRecord {
    uint64_t seq = 0;
    uint64_t ts_nsec = 0;     // since boot (local_clock)
    int level = -1;           // syslog level 0..7, -1 if not known
    uint32_t caller_id = 0;   // CONFIG_PRINTK_CALLER: thread id, or 0x80000000 | CPU
    std::string text;         // without the trailing newline; may hold several lines
};

struct KernelLog {
    std::vector<LogRecord> records;  // by sequence number
    uint64_t lost = 0;               // records in the ring's id range that could not be read
    std::vector<std::string> warnings;
};

// Reads every finalized or committed record between the descriptor ring's
// tail and head. Throws kq::Error if the kernel has no printk ringbuffer
// (`prb`) or its layout is not in DWARF; unreadable records are counted in
// `lost`, not fatal.
KernelLog read_kernel_log(const LinuxKernel& k);

// "[   13.725290] text", one line per line of the record, as dmesg prints it.
std::string format_log_record(const LogRecord& r);

}  // namespace kq
