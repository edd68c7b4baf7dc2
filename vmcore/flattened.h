// makedumpfile's flattened format (QEMU `dump-guest-memory -z`,
// `makedumpfile -F`): a 4 KiB header ("makedumpfile", type 1, version 1,
// big-endian), then records {int64 offset, int64 size} (big-endian) each
// followed by `size` bytes that belong at `offset` of the regular file, and
// an end marker {-1, -1}. libkdumpfile 0.5.1 does not read it, so it is
// converted once into the regular file, kept in a cache.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "vmcore/dump.h"

namespace kq {

struct FlattenedStats {
    uint64_t records = 0;
    uint64_t data_bytes = 0;   // payload bytes copied
    uint64_t output_size = 0;  // size of the rearranged file
};

// Rearranges the flattened stream read from `in_fd` into `out_path`. Writes
// to a temporary name in the same directory and renames it into place, so
// no partial output is ever left behind. Throws kq::Error (one line naming
// `display`) for a truncated or corrupt stream or a write failure.
// `progress`, if set, is called about every GiB of input with the bytes
// read so far.
FlattenedStats convert_flattened(int in_fd, const std::string& display, const std::string& out_path,
                                 const std::function<void(uint64_t)>& progress = {});

// The cache directory: opts.cache_dir, else $KQ_CACHE, else
// ~/.cache/kquiesce.
std::string cache_root(const DumpOptions& opts);

// Where the converted copy of `path` lives: <cache>/converted/<name>,
// the name keyed by the input's absolute path, size and modification time.
std::string converted_path(const std::string& path, uint64_t size, int64_t mtime_ns,
                           const DumpOptions& opts);

// Removes older converted copies of the same input (same path, another
// size or modification time) next to `current`.
void remove_stale_conversions(const std::string& current);

}  // namespace kq
