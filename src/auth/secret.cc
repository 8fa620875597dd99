#include "auth/secret.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace weft::auth {

result<secret_string> read_file_wiped(const std::string& path, size_t max) {
    int fd = path == "-" ? 0 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return error{errno};
    struct stat st {};
    size_t want = max;
    if (fd != 0 && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if (size_t(st.st_size) > max) {
            ::close(fd);
            return error{EFBIG};
        }
        want = size_t(st.st_size);
    }
    // One allocation of the final size (+1 to see the end): nothing is
    // reallocated and left behind unwiped.
    std::vector<char, wiping_allocator<char>> buf(want + 1);
    size_t have = 0;
    for (;;) {
        ssize_t n = ::read(fd, buf.data() + have, buf.size() - have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            if (fd != 0) ::close(fd);
            return error{e};
        }
        if (n == 0) break;
        have += size_t(n);
        if (have == buf.size()) {
            if (fd != 0) ::close(fd);
            return error{EFBIG};  // grew past what fstat said, or more than max
        }
    }
    if (fd != 0) ::close(fd);
    return secret_string(std::string_view(buf.data(), have));
}

secret_string read_key_file(const std::string& path, const char* what, key_check check,
                            std::string* why, bool* exposed) {
    struct stat st {};
    *exposed = path != "-" && ::stat(path.c_str(), &st) == 0 && (st.st_mode & 077);
    // A key is ~100 bytes; 4 KiB is plenty.
    auto s = read_file_wiped(path, 4096);
    if (!s) {
        *why = std::string("cannot read the ") + what + " from " + path + ": " +
               (s.err().code == EFBIG ? "too large for a secret" : s.err().message());
        return {};
    }
    std::string w;
    if (!check(s->view(), &w)) {
        *why = std::string("the ") + what + " in " + path + ": " + w;
        return {};
    }
    return std::move(s.value());
}

}  // namespace weft::auth
