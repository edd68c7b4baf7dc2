// A small streaming JSON writer for --json output.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace kq {

class Json {
public:
    Json& begin_object() { sep(); out_ += '{'; first_.push_back(true); return *this; }
    Json& end_object() { out_ += '}'; first_.pop_back(); return *this; }
    Json& begin_array() { sep(); out_ += '['; first_.push_back(true); return *this; }
    Json& end_array() { out_ += ']'; first_.pop_back(); return *this; }
    Json& key(std::string_view k) { sep(); str(k); out_ += ':'; after_key_ = true; return *this; }
    Json& value(std::string_view s) { sep(); str(s); return *this; }
    Json& value(const char* s) { return value(std::string_view(s)); }
    Json& value(const std::string& s) { return value(std::string_view(s)); }
    Json& value(bool b) { sep(); out_ += b ? "true" : "false"; return *this; }
    Json& value(int64_t v) { sep(); out_ += std::to_string(v); return *this; }
    Json& value(int v) { return value(static_cast<int64_t>(v)); }
    Json& value(uint64_t v) { sep(); out_ += std::to_string(v); return *this; }
    Json& value(double v) {
        char b[32];
        snprintf(b, sizeof b, "%.6g", v);
        sep();
        out_ += b;
        return *this;
    }
    Json& null() { sep(); out_ += "null"; return *this; }
    // A value rendered elsewhere (another command's JSON object).
    Json& raw(std::string_view json) { sep(); out_ += json; return *this; }
    // Addresses are strings ("0xffffffffc0a01000"): JSON numbers lose 64-bit precision.
    Json& addr(uint64_t a) {
        char b[24];
        snprintf(b, sizeof b, "%#llx", static_cast<unsigned long long>(a));
        return value(std::string_view(b));
    }
    template <class T> Json& field(std::string_view k, const T& v) { key(k); return value(v); }
    Json& field_addr(std::string_view k, uint64_t a) { key(k); return addr(a); }
    const std::string& str() const { return out_; }

private:
    void sep() {
        if (after_key_) { after_key_ = false; return; }
        if (first_.empty()) return;
        if (!first_.back()) out_ += ',';
        first_.back() = false;
    }
    void str(std::string_view s) {
        out_ += '"';
        for (unsigned char c : s) {
            switch (c) {
                case '"': out_ += "\\\""; break;
                case '\\': out_ += "\\\\"; break;
                case '\n': out_ += "\\n"; break;
                case '\t': out_ += "\\t"; break;
                default:
                    if (c < 0x20) {
                        char b[8];
                        snprintf(b, sizeof b, "\\u%04x", c);
                        out_ += b;
                    } else {
                        out_ += static_cast<char>(c);
                    }
            }
        }
        out_ += '"';
    }
    std::string out_;
    std::vector<bool> first_;
    bool after_key_ = false;
};

}  // namespace kq
