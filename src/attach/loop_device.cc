#include "attach/loop_device.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <fmt/format.h>

namespace weft::attach {
namespace {

struct fd_guard {
    int fd;
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

result<std::string> loop_attach(const std::string& file, loop_options o) {
    fd_guard backing{::open(file.c_str(), (o.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC)};
    if (backing.fd < 0) return error{errno};
    fd_guard control{::open("/dev/loop-control", O_RDWR | O_CLOEXEC)};
    if (control.fd < 0) return error{errno};
    // Another process may take the free device between the two calls: ask
    // again (the kernel then gives the next one).
    for (int attempt = 0; attempt < 16; ++attempt) {
        int n = ::ioctl(control.fd, LOOP_CTL_GET_FREE);
        if (n < 0) return error{errno};
        std::string dev = fmt::format("/dev/loop{}", n);
        fd_guard loop{::open(dev.c_str(), (o.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC)};
        if (loop.fd < 0) return error{errno};
        loop_config c{};
        c.fd = uint32_t(backing.fd);
        c.block_size = o.block_size;
        c.info.lo_flags =
            (o.direct_io ? LO_FLAGS_DIRECT_IO : 0) | (o.read_only ? LO_FLAGS_READ_ONLY : 0);
        int rc = ::ioctl(loop.fd, LOOP_CONFIGURE, &c);
        if (rc < 0 && errno == EINVAL && o.direct_io) {
            c.info.lo_flags &= ~LO_FLAGS_DIRECT_IO;
            rc = ::ioctl(loop.fd, LOOP_CONFIGURE, &c);
        }
        if (rc == 0) return dev;
        if (errno != EBUSY) return error{errno};
    }
    return error{EBUSY};
}

result<void> loop_detach(const std::string& device) {
    // An exclusive open fails while a file system (or anyone else) holds it
    // exclusively.
    fd_guard excl{::open(device.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC)};
    if (excl.fd < 0) return error{errno};
    if (::ioctl(excl.fd, LOOP_CLR_FD, 0) < 0) return errno == ENXIO ? result<void>{} : error{errno};
    // With another opener (a plain open: dd, an application, udev) the
    // kernel only marks the device to clear itself at the last close and
    // says yes. Still bound: undo the mark and say no.
    loop_info64 info{};
    if (::ioctl(excl.fd, LOOP_GET_STATUS64, &info) == 0) {
        info.lo_flags &= ~uint32_t(LO_FLAGS_AUTOCLEAR);
        ::ioctl(excl.fd, LOOP_SET_STATUS64, &info);
        return error{EBUSY};
    }
    return {};
}

result<void> loop_set_capacity(const std::string& device) {
    // The backing file's size as its file system says now (a FUSE file's
    // cached size is only refreshed by asking): older kernels' loop takes
    // the cached one.
    std::string file = loop_backing_file(device);
    struct stat st {};
    if (!file.empty()) ::stat(file.c_str(), &st);
    fd_guard loop{::open(device.c_str(), O_RDONLY | O_CLOEXEC)};
    if (loop.fd < 0) return error{errno};
    if (::ioctl(loop.fd, LOOP_SET_CAPACITY, 0) < 0) return error{errno};
    return {};
}

std::string loop_backing_file(const std::string& device) {
    std::string name = device.substr(device.rfind('/') + 1);
    std::ifstream f("/sys/block/" + name + "/loop/backing_file");
    std::string path;
    std::getline(f, path);
    return path;
}

}  // namespace weft::attach
