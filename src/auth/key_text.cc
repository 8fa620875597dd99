#include "auth/key_text.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>

namespace weft::auth {

uint32_t crc32_ieee(std::span<const uint8_t> data) {
    uint32_t crc = 0xffffffffu;
    for (uint8_t b : data) {
        crc ^= b;
        for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

namespace {

// "32, 48 or 64" of f(n) for each n.
template <typename F>
std::string list_text(std::initializer_list<size_t> lengths, F f) {
    std::string s;
    size_t i = 0;
    for (size_t n : lengths) {
        if (i++) s += i == lengths.size() ? " or " : ", ";
        s += std::to_string(f(n));
    }
    return s;
}

size_t body_chars(size_t key_length) {
    return (key_length + 4 + 2) / 3 * 4;
}

}  // namespace

result<secret_bytes> decode_key_body(std::string_view body, std::initializer_list<size_t> lengths,
                                     std::string* why) {
    auto fail = [&](std::string s) -> result<secret_bytes> {
        if (why) *why = std::move(s);
        return error{EINVAL};
    };
    const std::string holds = "the key must hold " +
                              list_text(lengths, [](size_t n) { return n; }) +
                              " bytes and a CRC-32";
    // base64 of key + 4 bytes, padded: 4 characters per 3 bytes, rounded up.
    bool length_ok = false;
    for (size_t n : lengths) length_ok |= body.size() == body_chars(n);
    if (!length_ok)
        return fail(holds + " (" + list_text(lengths, body_chars) + " base64 characters)");
    secret_bytes raw(body.size() / 4 * 3);
    int n = EVP_DecodeBlock(raw.data(), reinterpret_cast<const unsigned char*>(body.data()),
                            int(body.size()));
    if (n < 0) return fail("the key is not valid base64");
    // EVP_DecodeBlock keeps the padding's zero bytes: count them off.
    size_t len = size_t(n);
    for (size_t i = body.size(); i > 0 && body[i - 1] == '='; --i) --len;
    if (len < 4 || std::find(lengths.begin(), lengths.end(), len - 4) == lengths.end())
        return fail(holds);
    len -= 4;
    uint32_t stored = uint32_t(raw[len]) | uint32_t(raw[len + 1]) << 8 |
                      uint32_t(raw[len + 2]) << 16 | uint32_t(raw[len + 3]) << 24;
    if (crc32_ieee({raw.data(), len}) != stored)
        return fail("the key's CRC-32 does not match: the key is damaged or mistyped");
    raw.resize(len);
    return raw;
}

secret_string encode_key_body(std::span<const uint8_t> key) {
    secret_bytes raw(key.begin(), key.end());
    uint32_t crc = crc32_ieee(key);
    for (int i = 0; i < 4; ++i) raw.push_back(uint8_t(crc >> (8 * i)));
    std::basic_string<char, std::char_traits<char>, wiping_allocator<char>> b64(
        (raw.size() + 2) / 3 * 4 + 1, '\0');
    int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), raw.data(), int(raw.size()));
    return secret_string({b64.data(), size_t(n)});
}

secret_string format_key_text(std::string_view prefix, unsigned hh, std::span<const uint8_t> key) {
    std::basic_string<char, std::char_traits<char>, wiping_allocator<char>> out(prefix);
    out.push_back(char('0' + hh / 10 % 10));
    out.push_back(char('0' + hh % 10));
    out.push_back(':');
    out.append(encode_key_body(key).view());
    out.push_back(':');
    return secret_string({out.data(), out.size()});
}

std::string_view trim_key_text(std::string_view text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
        text.remove_suffix(1);
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    return text;
}

std::string base64(std::span<const uint8_t> data) {
    std::string out((data.size() + 2) / 3 * 4 + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                            int(data.size()));
    out.resize(size_t(n));
    return out;
}

}  // namespace weft::auth
