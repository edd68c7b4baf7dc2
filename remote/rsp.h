// GDB remote serial protocol framing: $payload#checksum, hex encodings.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kq::rsp {

std::string frame(std::string_view payload);  // "$...#cc"
std::string to_hex(const void* data, size_t len);
std::string to_hex(std::string_view s);
std::optional<std::string> from_hex(std::string_view hex);  // bytes, nullopt on bad input
std::optional<uint64_t> parse_u64(std::string_view hex);

// Incremental decoder of a byte stream from the client.
class Decoder {
public:
    void feed(const char* data, size_t len) { buf_.append(data, len); }
    enum class Kind { none, packet, interrupt, ack, nack, bad_checksum };
    struct Item {
        Kind kind = Kind::none;
        std::string payload;
    };
    Item next();  // Kind::none when more bytes are needed

private:
    std::string buf_;
};

}  // namespace kq::rsp
