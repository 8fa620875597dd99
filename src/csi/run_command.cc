#include "csi/run_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace weft::csi {

std::string command_result::why() const {
    std::string text = err.empty() ? out : err;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    size_t nl = text.rfind('\n');
    std::string last = nl == std::string::npos ? text : text.substr(nl + 1);
    return last.empty() ? "exit status " + std::to_string(rc) : last;
}

command_result run_command(const std::vector<std::string>& argv) {
    command_result r;
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return r;
    if (::pipe2(err, O_CLOEXEC) != 0) {
        ::close(out[0]), ::close(out[1]);
        return r;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    // The tool gets no blocked signals (the plugin blocks SIGTERM for its
    // own sigwait, and a mask is inherited).
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    ::close(err[1]);
    if (rc != 0) {
        ::close(out[0]), ::close(err[0]);
        r.err = argv[0] + ": cannot run it (" + std::string(std::strerror(rc)) + ")";
        return r;
    }
    // Both pipes at once: a tool that fills one while we wait on the other
    // would never end.
    pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    std::string* into[2] = {&r.out, &r.err};
    int open_fds = 2;
    char buf[4096];
    while (open_fds > 0) {
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = ::read(p[i].fd, buf, sizeof buf);
            if (n > 0) {
                into[i]->append(buf, size_t(n));
            } else {
                ::close(p[i].fd);
                p[i].fd = -1;
                --open_fds;
            }
        }
    }
    int ws = 0;
    while (::waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    r.rc = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    return r;
}

namespace {

struct mount_entry {
    std::string devno;  // "MAJ:MIN"
    std::string point, fstype, source;
};

// Each line of /proc/self/mountinfo, in order (the last mount on a point is
// the one on top).
template <class F>
void for_each_mount(F f) {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE ...
        std::istringstream s(line);
        mount_entry m;
        std::string id, parent, root, field;
        s >> id >> parent >> m.devno >> root >> m.point;
        while (s >> field && field != "-") {
        }
        s >> m.fstype >> m.source;
        f(m);
    }
}

}  // namespace

bool is_mount_point(const std::string& path, std::string* source, std::string* fstype) {
    bool found = false;
    for_each_mount([&](const mount_entry& m) {
        if (m.point != path) return;
        found = true;
        if (source) *source = m.source;
        if (fstype) *fstype = m.fstype;
    });
    return found;
}

std::string mount_point_of_device(const std::string& dev) {
    struct stat st {};
    if (::stat(dev.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) return {};
    std::string want = std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
    std::string at;
    for_each_mount([&](const mount_entry& m) {
        if (at.empty() && m.devno == want) at = m.point;
    });
    return at;
}

}  // namespace weft::csi
