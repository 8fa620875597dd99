// result<T>: a value or a negative errno, for the data path where exceptions
// are too slow and std::expected is not yet available (clang 14 for fuzzing).
#pragma once

#include <cassert>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace weft {

// An error is a positive errno value (0 is never an error).
struct error {
    int code = 0;
    static error from_res(int res) { return error{-res}; }  // io_uring style -errno
    std::string message() const { return std::strerror(code); }
    friend bool operator==(error, error) = default;
};

template <typename T>
class [[nodiscard]] result {
  public:
    result(T v) : v_(std::move(v)) {}
    result(error e) : v_(e) { assert(e.code != 0); }

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    const T& value() const& { return std::get<0>(v_); }
    T* operator->() { return &value(); }
    T& operator*() & { return value(); }
    error err() const { return ok() ? error{} : std::get<1>(v_); }

  private:
    std::variant<T, error> v_;
};

template <>
class [[nodiscard]] result<void> {
  public:
    result() = default;
    result(error e) : e_(e) {}
    bool ok() const { return e_.code == 0; }
    explicit operator bool() const { return ok(); }
    error err() const { return e_; }

  private:
    error e_{};
};

// Turns an io_uring/syscall style return value (>= 0 or -errno) into a result.
inline result<size_t> res_to_result(int res) {
    if (res < 0) return error{-res};
    return static_cast<size_t>(res);
}

}  // namespace weft
