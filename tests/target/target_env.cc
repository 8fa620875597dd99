#include "target/target_env.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "nvmf/tcp_server.h"

namespace weft::test {

namespace {

hostid_t make_hostid(uint8_t seed) {
    hostid_t id;
    for (size_t i = 0; i < id.size(); ++i) id[i] = uint8_t(seed + i);
    return id;
}

// Aborts the process when a test outlives its budget.
class hang_guard {
  public:
    explicit hang_guard(std::chrono::seconds limit) {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        name_ = info ? std::string(info->test_suite_name()) + "." + info->name() : "?";
        thread_ = std::thread([this, limit] {
            std::unique_lock lock(mutex_);
            if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
                std::fprintf(stderr, "%s: still running after %lld s, aborting\n", name_.c_str(),
                             static_cast<long long>(limit.count()));
                std::abort();
            }
        });
    }
    ~hang_guard() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }

  private:
    std::string name_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

std::shared_ptr<bdev::bdev> malloc_dev(const char* name, uint64_t blocks) {
    // Room to grow 4x (the resize tests), no more address space than that.
    return std::shared_ptr<bdev::bdev>(
        bdev::make_malloc_bdev(name, blocks, block_size, blocks * 4));
}

}  // namespace

const host_identity host_a{"nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-00000000000a",
                           make_hostid(0xa0)};
const host_identity host_b{"nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-4000-8000-00000000000b",
                           make_hostid(0xb0)};
const host_identity host_c{"nqn.2014-08.org.nvmexpress:uuid:cccccccc-0000-4000-8000-00000000000c",
                           make_hostid(0xc0)};

nvmf::ns_ids ids_for(uint32_t nsid) {
    nvmf::ns_ids ids;
    for (size_t i = 0; i < 16; ++i) {
        ids.uuid[i] = uint8_t(0x10 * nsid + i + 1);
        ids.nguid[i] = uint8_t(0x80 + 0x10 * nsid + i);
    }
    for (size_t i = 0; i < 8; ++i) ids.eui64[i] = uint8_t(0x40 + 0x10 * nsid + i);
    return ids;
}

target_env::target_env(const env_options& opt) : tgt(opt.limits) {
    allow = tgt.add_subsystem(allow_nqn, "WEFTTEST0001", "weft test allow").value();
    allow->allow_any_host(false);
    allow->allow_host(host_a.nqn);
    allow->allow_host(host_b.nqn);
    devs.push_back(malloc_dev("ns1", ns1_blocks));
    devs.push_back(malloc_dev("ns2", ns2_blocks));
    EXPECT_TRUE(allow->add_namespace(1, devs[0], ids_for(1)).ok());
    EXPECT_TRUE(allow->add_namespace(2, devs[1], ids_for(2)).ok());

    open = tgt.add_subsystem(open_nqn, "WEFTTEST0002", "weft test open").value();
    open->allow_any_host(true);
    EXPECT_TRUE(open->add_namespace(1, malloc_dev("open1", 256), ids_for(9)).ok());

    priv = tgt.add_subsystem(private_nqn, "WEFTTEST0003", "weft test private").value();
    priv->allow_any_host(false);
    priv->allow_host(host_c.nqn);
}

target_env::~target_env() {
    // Namespaces go first: they hold resize listeners on their bdevs.
    for (auto& s : {allow, open, priv}) {
        auto table = s->namespaces();
        for (auto& [nsid, n] : *table) (void)s->remove_namespace(nsid);
    }
}

connect_params target_env::params(const host_identity& h, const std::string& nqn,
                                  uint32_t kato) const {
    connect_params p;
    p.subnqn = nqn;
    p.hostnqn = h.nqn;
    p.hostid = h.id;
    p.kato = kato;
    return p;
}

void run_with_target(std::function<task<void>(target_env&)> body, env_options opt) {
    hang_guard guard(std::chrono::seconds(60));
    run_reactors(2, [&]() -> task<void> {
        auto env = std::make_unique<target_env>(opt);
        nvmf::tcp_server server(env->tgt, opt.tcp, 2);
        auto r = co_await server.listen(socket_address::ipv4("127.0.0.1", 0));
        if (!r) {
            ADD_FAILURE() << "listen: " << r.err().message();
            co_return;
        }
        env->addr = server.addresses().front();
        env->server = &server;
        co_await body(*env);
        co_await server.stop();
        env.reset();
    });
}

}  // namespace weft::test
