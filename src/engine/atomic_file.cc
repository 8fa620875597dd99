#include "engine/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

namespace weft::engine {

bool write_atomically(const std::string& path, const std::string& text, std::string* why) {
    std::string tmp = path + ".tmp";
    std::error_code ec;
    auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
        std::filesystem::create_directories(parent, ec);
        // The new directory's own entry, durable in its parent.
        std::string up = parent.parent_path().string();
        int ufd = ::open(up.empty() ? "." : up.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (ufd >= 0) {
            ::fsync(ufd);
            ::close(ufd);
        }
    }
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        *why = tmp + ": " + std::strerror(errno);
        return false;
    }
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            *why = tmp + ": " + std::strerror(errno);
            ::close(fd);
            return false;
        }
        done += size_t(n);
    }
    int synced = ::fsync(fd), sync_errno = errno;
    int closed = ::close(fd);
    if (synced != 0 || closed != 0) {
        *why = tmp + ": fsync: " + std::strerror(synced != 0 ? sync_errno : errno);
        return false;
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        *why = path + ": rename: " + std::strerror(errno);
        return false;
    }
    // The rename is durable once the directory is.
    std::string dir = std::filesystem::path(path).parent_path().string();
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ::fsync(dfd) != 0) {
        *why = (dir.empty() ? std::string(".") : dir) + ": fsync: " + std::strerror(errno);
        if (dfd >= 0) ::close(dfd);
        return false;
    }
    ::close(dfd);
    return true;
}

}  // namespace weft::engine
