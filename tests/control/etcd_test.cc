// The etcd store beyond the contract (store_test.cc), against a real
// 3-member etcd cluster (etcd_cluster.h).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "control/etcd_cluster.h"
#include "control/store.h"

namespace weft::control {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using test::etcd_cluster;

double seconds_since(clock_type::time_point t) {
    return std::chrono::duration<double>(clock_type::now() - t).count();
}

// Each test its own keys, so that tests sharing the cluster do not meet.
std::string test_prefix() {
    auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return fmt::format("/weft-test/{}/{}/", info->test_suite_name(), info->name());
}

template <class F>
bool eventually(std::chrono::milliseconds timeout, F&& f) {
    auto until = clock_type::now() + timeout;
    while (!f()) {
        if (clock_type::now() > until) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

// A TCP relay in front of an etcd member whose answers can be held back: a
// request then reaches etcd, which applies it, but its answer never comes
// (as with a member that dies or a network that drops after the request).
class relay {
  public:
    explicit relay(const std::string& target_endpoint)
        : target_(std::stoi(target_endpoint.substr(target_endpoint.rfind(':') + 1))) {
        listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a = loopback(0);
        socklen_t len = sizeof a;
        if (::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::listen(listen_, 16) != 0 ||
            ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            throw std::runtime_error("relay: cannot listen");
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~relay() {
        stop_ = true;
        thread_.join();
        for (auto& [c, s] : pairs_) ::close(c), ::close(s);
        ::close(listen_);
    }
    std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
    void hold_answers() { hold_ = true; }

  private:
    static sockaddr_in loopback(int port) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        return a;
    }
    static bool pass(int from, int to) {
        char buf[16384];
        ssize_t n = ::read(from, buf, sizeof buf);
        return n > 0 && ::write(to, buf, size_t(n)) == n;
    }
    void run() {
        while (!stop_) {
            std::vector<pollfd> fds{{listen_, POLLIN, 0}};
            for (auto& [c, s] : pairs_) {
                fds.push_back({c, POLLIN, 0});
                fds.push_back({s, short(hold_ ? 0 : POLLIN), 0});  // held: left unread
            }
            if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
            std::vector<std::pair<int, int>> keep;
            for (size_t i = 0; i < pairs_.size(); ++i) {
                auto [c, s] = pairs_[i];
                bool ok = true;
                if (fds[1 + 2 * i].revents) ok = pass(c, s);
                if (ok && fds[2 + 2 * i].revents) ok = pass(s, c);
                if (ok) {
                    keep.emplace_back(c, s);
                } else {
                    ::close(c);
                    ::close(s);
                }
            }
            pairs_ = std::move(keep);
            if (fds[0].revents & POLLIN) {
                int c = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
                int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                sockaddr_in a = loopback(target_);
                if (c >= 0 && s >= 0 &&
                    ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
                    pairs_.emplace_back(c, s);
                } else {
                    if (c >= 0) ::close(c);
                    if (s >= 0) ::close(s);
                }
            }
        }
    }

    int target_, listen_ = -1, port_ = 0;
    std::atomic<bool> hold_{false}, stop_{false};
    std::vector<std::pair<int, int>> pairs_;  // (client side, etcd side); the thread's
    std::thread thread_;
};

class Etcd : public ::testing::Test {
  protected:
    void SetUp() override {
        try {
            cluster_ = &test::shared_etcd();
        } catch (const std::exception& e) {
            FAIL() << e.what();
        }
    }
    std::unique_ptr<store> open(std::optional<commit_fence> fence = std::nullopt,
                                std::chrono::milliseconds deadline = 5s) {
        return open_etcd_store(cluster_->endpoints(), test_prefix(), std::move(fence), deadline);
    }
    etcd_cluster* cluster_ = nullptr;
};
class EtcdStore : public Etcd {};

TEST_F(EtcdStore, DescribesItsEndpointsAndRefusesOthers) {
    auto s = open();
    EXPECT_EQ(s->describe(), "etcd:" + cluster_->endpoints());
    EXPECT_THROW(open_etcd_store(" , "), store_error);
    EXPECT_THROW(open_etcd_store("https://127.0.0.1:2379"), store_error);
}

TEST_F(EtcdStore, ListsManyKeysInPagesAsOneSnapshot) {
    auto s = open();
    constexpr int n = 1100;  // more than two pages; etcd takes 128 ops per txn
    for (int i = 0; i < n;) {
        txn t;
        for (int j = 0; j < 100 && i < n; ++j, ++i) t.put(fmt::format("many/{:05}", i), "v");
        ASSERT_TRUE(s->commit(t));
    }
    ASSERT_TRUE(s->commit(txn().put("many", "not under many/").put("manz", "neither")));
    auto l = s->list("many/");
    ASSERT_EQ(l.size(), size_t(n));
    for (int i = 0; i < n; ++i) ASSERT_EQ(l[i].key, fmt::format("many/{:05}", i));
}

TEST_F(EtcdStore, NoEtcdThereIsAStoreErrorNamingTheEndpoint) {
    // A killed member's port: surely closed.
    test::restart_on_exit restart{*cluster_};
    cluster_->kill(2);
    auto s = open_etcd_store(cluster_->endpoint(2), test_prefix(), std::nullopt, 1s);
    auto t0 = clock_type::now();
    try {
        s->get("x");
        FAIL() << "read from a dead member";
    } catch (const store_error& e) {
        EXPECT_NE(std::string(e.what()).find(cluster_->endpoint(2)), std::string::npos) << e.what();
    }
    EXPECT_THROW(s->commit(txn().put("x", "y")), store_error);
    EXPECT_LT(seconds_since(t0), 3.0);
}

TEST_F(EtcdStore, OneMemberDownCommitsGoOn) {
    test::restart_on_exit restart{*cluster_};
    auto s = open();
    ASSERT_TRUE(s->commit(txn().put("counter", "0")));  // connected to the first member
    cluster_->kill(0);
    for (int i = 1; i <= 5; ++i) {
        auto cur = s->get("counter");
        ASSERT_TRUE(cur);
        ASSERT_EQ(cur->value, std::to_string(i - 1));
        auto r =
            s->commit(txn().expect("counter", cur->revision).put("counter", std::to_string(i)));
        ASSERT_TRUE(r);
    }
    EXPECT_TRUE(s->commit(txn().put("blind", "x")));  // by now on a live member
    EXPECT_EQ(s->list("").size(), 2u);
    cluster_->restart(0);
    // The member that was down catches up; a store on it alone sees it all.
    auto only0 = open_etcd_store(cluster_->endpoint(0), test_prefix());
    EXPECT_EQ(only0->get("counter")->value, "5");
}

TEST_F(EtcdStore, TwoMembersDownIsAStoreErrorWithinTheDeadline) {
    test::restart_on_exit restart{*cluster_};
    auto s = open(std::nullopt, 1500ms);
    ASSERT_TRUE(s->commit(txn().put("k", "before")));
    cluster_->kill(1);
    cluster_->kill(2);
    auto t0 = clock_type::now();
    // Guarded (tried on every member) or not (not retried once sent): a
    // sentence naming the endpoints either way.
    for (auto t : {txn().expect("other", 0).put("other", "x"), txn().put("blind", "x")}) {
        try {
            s->commit(t);
            ADD_FAILURE() << "committed without a quorum";
        } catch (const store_error& e) {
            EXPECT_NE(std::string(e.what()).find(cluster_->endpoints()), std::string::npos)
                << e.what();
            std::printf("[ no quorum] %s\n", e.what());
        }
    }
    double commit_s = seconds_since(t0) / 2;
    t0 = clock_type::now();
    EXPECT_THROW(s->get("k"), store_error);
    double get_s = seconds_since(t0);
    // One deadline on the live member; the dead ones refuse at once.
    EXPECT_LT(commit_s, 1.5 + 1.5);
    EXPECT_LT(get_s, 1.5 + 1.5);
    cluster_->restart(1);
    cluster_->restart(2);
    EXPECT_EQ(s->get("k")->value, "before");
    EXPECT_TRUE(s->commit(txn().put("after", "x")));
}

// A commit whose answer is lost after etcd applied it: retried on the next
// member only when guarded, and then reported as applied (once), not as a
// failed compare; an unguarded one is an error that says it may have been
// applied, and indeed was.
TEST_F(EtcdStore, ACommitWhoseAnswerIsLostIsNeitherRepeatedNorMisreported) {
    relay r(cluster_->endpoint(0));
    auto s = open_etcd_store(r.endpoint() + "," + cluster_->endpoint(1), test_prefix(),
                             std::nullopt, 500ms);
    ASSERT_TRUE(s->commit(txn().put("k", "0")));  // through the relay, which now holds answers
    auto k = s->get("k");
    r.hold_answers();
    auto rev = s->commit(txn().expect("k", k->revision).put("k", "1").put("other", "x"));
    ASSERT_TRUE(rev) << "the first try's success was taken for a failed compare";
    auto check = open_etcd_store(cluster_->endpoint(2), test_prefix());
    EXPECT_EQ(check->get("k")->value, "1");
    EXPECT_EQ(check->get("k")->revision, *rev);
    EXPECT_EQ(check->get("other")->revision, *rev);
    EXPECT_EQ(check->revision(), *rev);  // applied once: one revision

    relay r2(cluster_->endpoint(0));
    auto blind = open_etcd_store(r2.endpoint() + "," + cluster_->endpoint(1), test_prefix(),
                                 std::nullopt, 500ms);
    ASSERT_TRUE(blind->get("k"));
    r2.hold_answers();
    try {
        blind->commit(txn().put("blind", "x"));
        ADD_FAILURE() << "an unconfirmed unguarded commit was retried";
    } catch (const store_error& e) {
        EXPECT_NE(std::string(e.what()).find("may or may not have been applied"), std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(eventually(2s, [&] { return bool(check->get("blind")); }));
}

}  // namespace
}  // namespace weft::control
