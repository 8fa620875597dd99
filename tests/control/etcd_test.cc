// The etcd store beyond the contract (store_test.cc), and the leader
// election, against a real 3-member etcd cluster (etcd_cluster.h).
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
#include "control/leader.h"
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
class LeaderElection : public Etcd {};

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

// --- leader election ---------------------------------------------------

leader_options quick() {
    leader_options o;
    o.ttl = 3s;
    o.poll = 200ms;
    o.deadline = 1s;
    return o;
}

TEST_F(LeaderElection, ExactlyOneLeader) {
    leader_election a(cluster_->endpoints(), "a", test_prefix(), quick());
    leader_election b(cluster_->endpoints(), "b", test_prefix(), quick());
    ASSERT_TRUE(eventually(5s, [&] { return a.is_leader() || b.is_leader(); }));
    auto& l = a.is_leader() ? a : b;
    auto& f = a.is_leader() ? b : a;
    EXPECT_FALSE(f.is_leader());
    EXPECT_TRUE(eventually(2s, [&] { return f.leader_id() == l.id(); })) << f.leader_id();
    EXPECT_EQ(l.leader_id(), l.id());
    EXPECT_GT(l.leader_revision(), 0);
    EXPECT_EQ(f.leader_revision(), 0);
    // The key in etcd says so, and was created at the fencing token.
    auto s = open();
    auto k = s->get("leader");
    ASSERT_TRUE(k);
    EXPECT_EQ(k->value, l.id());
    // Over a second of polls and keepalives, never two leaders.
    auto until = clock_type::now() + 1s;
    while (clock_type::now() < until) {
        ASSERT_FALSE(a.is_leader() && b.is_leader());
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(l.is_leader());
}

TEST_F(LeaderElection, ResignHandsOverWithinAPoll) {
    leader_election a(cluster_->endpoints(), "a", test_prefix(), quick());
    ASSERT_TRUE(eventually(5s, [&] { return a.is_leader(); }));
    leader_election b(cluster_->endpoints(), "b", test_prefix(), quick());
    ASSERT_TRUE(eventually(2s, [&] { return b.leader_id() == "a"; }));
    auto t0 = clock_type::now();
    a.resign();
    EXPECT_FALSE(a.is_leader());
    ASSERT_TRUE(eventually(3s, [&] { return b.is_leader(); }));
    double took = seconds_since(t0);
    std::printf("[ handover ] after resign: %.2f s\n", took);
    EXPECT_LT(took, 1.5);
    EXPECT_EQ(b.leader_id(), "b");
}

// The crash of a leader: its keepalives stop, nothing is revoked. The other
// instance takes over once etcd expires the lease, and the old leader's
// writes are refused from then on, by itself (its lease is over) and, should
// it still try with its old token, by etcd.
TEST_F(LeaderElection, CrashedLeaderIsReplacedAndFencedOff) {
    leader_election a(cluster_->endpoints(), "a", test_prefix(), quick());
    ASSERT_TRUE(eventually(5s, [&] { return a.is_leader(); }));
    leader_election b(cluster_->endpoints(), "b", test_prefix(), quick());
    auto sa = open(a.fence()), sb = open(b.fence());
    ASSERT_TRUE(sa->commit(txn().put("x", "from a")));
    try {
        sb->commit(txn().put("x", "from b"));
        ADD_FAILURE() << "a standby committed";
    } catch (const store_error& e) {
        EXPECT_STREQ(e.what(), "not the leader any more");
    }
    int64_t old_token = a.leader_revision();
    ASSERT_GT(old_token, 0);

    auto t0 = clock_type::now();
    a.abandon();
    ASSERT_TRUE(eventually(10s, [&] { return b.is_leader(); }));
    double took = seconds_since(t0);
    std::printf("[ handover ] after a crash (ttl 3 s): %.2f s\n", took);
    EXPECT_LT(took, 3 + 3.0);
    EXPECT_FALSE(a.is_leader());  // its lease ran out before etcd's did
    EXPECT_GT(b.leader_revision(), old_token);

    // The deposed leader's store refuses at once...
    EXPECT_THROW(sa->commit(txn().put("x", "late a")), store_error);
    // ...and so does etcd, for a writer still holding the old token (a
    // leader paused across the hand-over would be one).
    auto stale = open(commit_fence{a.key(), [old_token] { return old_token; }});
    auto cur = stale->get("x");
    ASSERT_TRUE(cur);
    try {
        stale->commit(txn().expect("x", cur->revision).put("x", "stale a").put("y", "stale a"));
        ADD_FAILURE() << "a deposed leader's write went through";
    } catch (const store_error& e) {
        EXPECT_STREQ(e.what(), "not the leader any more");
    }
    EXPECT_EQ(sb->get("x")->value, "from a");
    EXPECT_FALSE(sb->get("y"));
    // The new leader writes; its own failed compares are still nullopt.
    ASSERT_TRUE(sb->commit(txn().expect("x", cur->revision).put("x", "from b")));
    EXPECT_FALSE(sb->commit(txn().expect("x", cur->revision).put("x", "again")));
    EXPECT_EQ(sb->get("x")->value, "from b");
}

// Keepalives that fail for ttl (no quorum) make the leader step down before
// etcd could expire its lease; once etcd is back it campaigns and leads again.
TEST_F(LeaderElection, LostLeaseStepsDownThenLeadsAgain) {
    test::restart_on_exit restart{*cluster_};
    leader_election a(cluster_->endpoints(), "a", test_prefix(), quick());
    ASSERT_TRUE(eventually(5s, [&] { return a.is_leader(); }));
    int64_t old_token = a.leader_revision();
    auto t0 = clock_type::now();
    cluster_->kill(1);
    cluster_->kill(2);
    ASSERT_TRUE(eventually(8s, [&] { return !a.is_leader(); }));
    double stepped = seconds_since(t0);
    // ttl after the last keepalive that etcd answered; etcd's raft leader
    // answers keepalives until it notices it lost its quorum (one or two
    // election timeouts of 1 s).
    EXPECT_LE(stepped, 3 + 2 + 0.5);
    EXPECT_EQ(a.leader_revision(), 0);
    cluster_->restart(1);
    cluster_->restart(2);
    ASSERT_TRUE(eventually(10s, [&] { return a.is_leader(); }));
    std::printf("[ lease    ] stepped down after %.2f s; leading again %.2f s after quorum lost\n",
                stepped, seconds_since(t0));
    EXPECT_GT(a.leader_revision(), old_token);
}

}  // namespace
}  // namespace weft::control
