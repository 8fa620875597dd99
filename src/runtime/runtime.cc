#include "runtime/runtime.h"

#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <barrier>
#include <cstring>
#include <latch>
#include <stdexcept>
#include <thread>

namespace weft {

runtime::runtime(runtime_config cfg) : cfg_(std::move(cfg)) {
    if (cfg_.cpus.empty()) throw std::invalid_argument("runtime needs at least one reactor");
    rings_ = std::make_unique<message_ring[]>(size_t(size()) * size());
    reactors_.assign(size(), nullptr);
}

runtime::~runtime() = default;

void runtime::stop_all() {
    reactor& self = reactor::local();
    for (unsigned i = 0; i < size(); ++i) {
        self.send(i, {[](void*) { reactor::local().stop(); }, nullptr});
    }
}

namespace {
void pin_to(int cpu, unsigned id) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0) spdlog::warn("reactor {}: cannot pin to CPU {}: {}", id, cpu, strerror(rc));
    char name[16];
    snprintf(name, sizeof name, "weft-r%u", id);
    pthread_setname_np(pthread_self(), name);
}
}  // namespace

void runtime::run_impl(std::function<task<void>()> main) {
    const unsigned n = size();
    std::latch constructed(n);
    std::barrier stopped(n);
    std::atomic<bool> failed{false};
    std::vector<std::exception_ptr> errors(n);

    auto body = [&](unsigned id) {
        pin_to(cfg_.cpus[id], id);
        std::unique_ptr<reactor> r;
        try {
            r = std::make_unique<reactor>(this, reactor::config{.id = id,
                                                                .ring_entries = cfg_.ring_entries,
                                                                .poll_window = cfg_.poll_window});
            reactors_[id] = r.get();
        } catch (...) {
            errors[id] = std::current_exception();
            failed = true;
        }
        constructed.arrive_and_wait();
        if (!failed) {
            if (id == 0) {
                // Captureless: a capturing coroutine lambda would dangle once
                // the temporary closure dies at the end of this statement.
                r->spawn([](std::function<task<void>()>* m, runtime* rt) -> task<void> {
                    co_await (*m)();
                    rt->stop_all();
                }(&main, this));
            }
            r->run();
        }
        // Nobody may touch a reactor after this barrier but its own thread:
        // wake() and ring pushes from peers have all stopped.
        stopped.arrive_and_wait();
        r.reset();
    };

    std::vector<std::thread> threads;
    threads.reserve(n);
    for (unsigned id = 0; id < n; ++id) threads.emplace_back(body, id);
    for (auto& t : threads) t.join();
    reactors_.assign(n, nullptr);
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

}  // namespace weft
