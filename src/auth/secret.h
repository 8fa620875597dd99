// Memory for secrets (keys, derived keys, DH values): wiped when freed, so
// that a key does not outlive its use in freed heap memory.
#pragma once

#include <openssl/crypto.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/result.h"

namespace weft::auth {

template <typename T>
struct wiping_allocator {
    using value_type = T;
    wiping_allocator() = default;
    template <typename U>
    wiping_allocator(const wiping_allocator<U>&) {}
    T* allocate(size_t n) { return std::allocator<T>().allocate(n); }
    void deallocate(T* p, size_t n) {
        OPENSSL_cleanse(p, n * sizeof(T));
        std::allocator<T>().deallocate(p, n);
    }
    template <typename U>
    bool operator==(const wiping_allocator<U>&) const {
        return true;
    }
};

using secret_bytes = std::vector<uint8_t, wiping_allocator<uint8_t>>;

// A secret in text form (a DHHC-1 key). Its characters live on the heap
// (the allocator wipes them) and the object's own bytes are wiped too, for
// a text short enough to sit in the string itself.
class secret_string {
  public:
    secret_string() = default;
    explicit secret_string(std::string_view s) : s_(s.data(), s.size()) {}
    secret_string(const secret_string&) = default;
    secret_string& operator=(const secret_string&) = default;
    ~secret_string() { OPENSSL_cleanse(s_.data(), s_.size()); }
    std::string_view view() const { return {s_.data(), s_.size()}; }
    bool empty() const { return s_.empty(); }
    bool operator==(const secret_string& o) const { return s_ == o.s_; }

  private:
    std::basic_string<char, std::char_traits<char>, wiping_allocator<char>> s_;
};

// A whole file (path "-": standard input) of at most `max` bytes, read
// straight into wiped memory (no stream buffer keeps a copy). Errors: the
// errno, EFBIG beyond `max`.
result<secret_string> read_file_wiped(const std::string& path, size_t max);

// A key from a file ("-": standard input) read into wiped memory and
// checked by `check` (true, or false with a sentence); empty with a
// sentence in `why` (naming `what`, never the key) on failure. `exposed`:
// set when the file can be read by other users.
using key_check = bool (*)(std::string_view text, std::string* why);
secret_string read_key_file(const std::string& path, const char* what, key_check check,
                            std::string* why, bool* exposed);

inline std::span<const uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace weft::auth
