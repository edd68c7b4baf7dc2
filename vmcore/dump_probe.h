// Identifies a dump file before libkdumpfile sees it, so that anything that
// is not a usable kernel dump is refused with one clear line, and a dump
// whose memory is cut short is recognised as truncated.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kq {

enum class DumpKind {
    Elf,        // ELF64 core (QEMU dump-guest-memory, /proc/vmcore copy)
    Kdump,      // kdump-compressed (diskdump) from makedumpfile or QEMU
    Flattened,  // makedumpfile's flattened stream: needs conversion
    Other,      // something else libkdumpfile may know (LKCD, sadump, ...)
};

struct DumpProbe {
    DumpKind kind = DumpKind::Other;
    std::string format;       // "ELF vmcore", "kdump-compressed", ...
    uint64_t file_size = 0;
    uint64_t needed_size = 0; // bytes the headers say the file holds (0: unknown)
    bool has_vmcoreinfo = false;
    // ELF: physical memory the PT_LOAD segments hold in the file (cut at its
    // end), sorted, merged [start, end). Empty: no such map.
    std::vector<std::pair<uint64_t, uint64_t>> phys_ranges;
    // ELF: where each PT_LOAD's bytes lie in the file (what the file holds
    // of p_filesz), sorted by physical address; empty with phys_ranges.
    struct FileSegment {
        uint64_t paddr = 0, offset = 0, size = 0;
    };
    std::vector<FileSegment> file_segments;
    // Truncated kdump-compressed: physical pages whose data lies beyond the
    // end of the file, sorted, merged [start, end).
    std::vector<std::pair<uint64_t, uint64_t>> missing_ranges;
    bool truncated() const { return needed_size > file_size; }
};

// Identifies the file open on `fd`. Throws kq::Error (one line naming
// `display`) for an unreadable file, a directory or device, an empty file,
// a file that is not a kernel dump (naming what it is instead), an
// unsupported architecture, a corrupt header or page descriptor, and a dump
// whose headers, notes or page descriptors are cut off. A dump cut off only
// in its memory data is accepted: truncated() is set.
DumpProbe probe_dump_fd(int fd, const std::string& display);

// "1.5 GiB", "512 KiB", "17 bytes".
std::string human_size(uint64_t bytes);

}  // namespace kq
