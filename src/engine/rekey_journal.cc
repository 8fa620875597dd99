#include "engine/rekey_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include "engine/atomic_file.h"

namespace weft::engine {

namespace {

// The target as a file name: letters, digits, '.', '-' and '_' kept, the
// rest as %XX ("p/v" -> "p%2Fv", "nexus:ID" -> "nexus%3AID").
std::string file_name(const std::string& target) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : target) {
        if (std::isalnum(c) || c == '.' || c == '-' || c == '_') {
            out.push_back(char(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

}  // namespace

rekey_journal::rekey_journal(const std::string& dir, const std::string& target)
    : path_((dir.empty() ? std::string(".") : dir) + "/rekey-" + file_name(target) + ".journal") {}

result<std::optional<bdev::rekey_record>> rekey_journal::load(std::string* why) const {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return std::optional<bdev::rekey_record>();
    std::vector<uint8_t> bytes;
    int err = fd < 0 ? errno : 0;
    // A record is at most a few hundred KiB: more is not one.
    constexpr size_t most = 32 + size_t(bdev::rekey_record_max_blocks) * 32 + 16;
    while (fd >= 0 && !err) {
        uint8_t buf[65536];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) err = errno;
        if (n <= 0) break;
        bytes.insert(bytes.end(), buf, buf + n);
        if (bytes.size() > most) break;
    }
    if (fd >= 0) ::close(fd);
    if (err) {
        *why = path_ + ": " + std::strerror(err);
        return error{EUCLEAN};
    }
    std::string w;
    auto r = bdev::parse_rekey_record(bytes, &w);
    if (!r) {
        *why = path_ + ": " + w;
        return error{EUCLEAN};
    }
    return std::optional<bdev::rekey_record>(std::move(*r));
}

bool rekey_journal::save(const std::string& encoded, std::string* why) const {
    return write_atomically(path_, encoded, why);
}

bool rekey_journal::remove(std::string* why) const {
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
        *why = path_ + ": " + std::strerror(errno);
        return false;
    }
    // Gone for good before a new rotation's key is saved (also when an
    // earlier try unlinked it and could not sync the directory).
    std::string dir = path_.substr(0, path_.rfind('/'));
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 ? -1 : ::fsync(fd);
    if (fd >= 0) ::close(fd);
    if (rc != 0) {
        *why = dir + ": fsync: " + std::strerror(errno);
        return false;
    }
    return true;
}

}  // namespace weft::engine
