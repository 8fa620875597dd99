#include "runtime/file.h"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace weft {

result<file> file::open(const std::string& path, options opt) {
    int flags = O_CLOEXEC | (opt.read_only ? O_RDONLY : O_RDWR);
    if (opt.create) flags |= O_CREAT;
    if (opt.direct) flags |= O_DIRECT;
    int fd = ::open(path.c_str(), flags, 0600);
    if (fd < 0) return error{errno};
    file f;
    f.fd_ = fd_handle(fd);
    f.direct_ = opt.direct;
    return f;
}

result<uint64_t> file::size() const {
    struct stat st {};
    if (fstat(fd(), &st) != 0) return error{errno};
    if (S_ISBLK(st.st_mode)) {
        uint64_t bytes = 0;
        if (ioctl(fd(), BLKGETSIZE64, &bytes) != 0) return error{errno};
        return bytes;
    }
    return uint64_t(st.st_size);
}

result<void> file::truncate(uint64_t bytes) {
    if (ftruncate(fd(), off_t(bytes)) != 0) return error{errno};
    return {};
}

}  // namespace weft
