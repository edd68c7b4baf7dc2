#include "remote/rsp.h"

namespace kq::rsp {

static const char kHex[] = "0123456789abcdef";

std::string to_hex(const void* data, size_t len) {
    const auto* p = static_cast<const uint8_t*>(data);
    std::string s(len * 2, '0');
    for (size_t i = 0; i < len; ++i) {
        s[2 * i] = kHex[p[i] >> 4];
        s[2 * i + 1] = kHex[p[i] & 15];
    }
    return s;
}

std::string to_hex(std::string_view s) { return to_hex(s.data(), s.size()); }

static int nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<std::string> from_hex(std::string_view hex) {
    if (hex.size() % 2) return std::nullopt;
    std::string out(hex.size() / 2, '\0');
    for (size_t i = 0; i < out.size(); ++i) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out[i] = static_cast<char>(hi << 4 | lo);
    }
    return out;
}

std::optional<uint64_t> parse_u64(std::string_view hex) {
    if (hex.empty() || hex.size() > 16) return std::nullopt;
    uint64_t v = 0;
    for (char c : hex) {
        int n = nibble(c);
        if (n < 0) return std::nullopt;
        v = v << 4 | static_cast<uint64_t>(n);
    }
    return v;
}

std::string frame(std::string_view payload) {
    uint8_t sum = 0;
    std::string out;
    out.reserve(payload.size() + 4);
    out += '$';
    for (char c : payload) {
        // '$', '#', '}' and '*' must be escaped inside a packet.
        if (c == '$' || c == '#' || c == '}' || c == '*') {
            out += '}';
            sum += '}';
            c ^= 0x20;
        }
        out += c;
        sum += static_cast<uint8_t>(c);
    }
    out += '#';
    out += kHex[sum >> 4];
    out += kHex[sum & 15];
    return out;
}

Decoder::Item Decoder::next() {
    while (!buf_.empty()) {
        char c = buf_[0];
        if (c == '+') { buf_.erase(0, 1); return {Kind::ack, {}}; }
        if (c == '-') { buf_.erase(0, 1); return {Kind::nack, {}}; }
        if (c == '\x03') { buf_.erase(0, 1); return {Kind::interrupt, {}}; }
        if (c != '$') { buf_.erase(0, 1); continue; }  // noise between packets
        size_t hash = buf_.find('#');
        if (hash == std::string::npos || buf_.size() < hash + 3) return {};
        std::string raw = buf_.substr(1, hash - 1);
        auto want = parse_u64(std::string_view(buf_).substr(hash + 1, 2));
        buf_.erase(0, hash + 3);
        uint8_t sum = 0;
        for (char ch : raw) sum += static_cast<uint8_t>(ch);
        if (!want || *want != sum) return {Kind::bad_checksum, {}};
        std::string payload;
        payload.reserve(raw.size());
        for (size_t i = 0; i < raw.size(); ++i) {
            if (raw[i] == '}' && i + 1 < raw.size()) payload += static_cast<char>(raw[++i] ^ 0x20);
            else payload += raw[i];
        }
        return {Kind::packet, std::move(payload)};
    }
    return {};
}

}  // namespace kq::rsp
