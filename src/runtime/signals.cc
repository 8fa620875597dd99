#include "runtime/signals.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "runtime/net.h"
#include "runtime/uring_op.h"

namespace weft {

sigset_t signal_set(std::initializer_list<int> sigs) {
    sigset_t set;
    sigemptyset(&set);
    for (int s : sigs) sigaddset(&set, s);
    return set;
}

void block_signals(const sigset_t& set) {
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

task<int> wait_for_signal(sigset_t set, abort_source* abort) {
    fd_handle fd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd) co_return -errno;
    signalfd_siginfo info{};
    auto op =
        make_op([&](io_uring_sqe* s) { io_uring_prep_read(s, fd.get(), &info, sizeof info, 0); });
    int rc = abort ? co_await std::move(op).abort_with(*abort) : co_await std::move(op);
    if (rc < 0) co_return rc;
    co_return int(info.ssi_signo);
}

}  // namespace weft
