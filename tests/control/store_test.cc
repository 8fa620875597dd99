// The store's contract (control/store.h), run against every backend.
#include "control/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <thread>

#include "control/etcd_cluster.h"

namespace weft::control {
namespace {

struct backend {
    const char* name;
    std::function<std::unique_ptr<store>(const std::string& dir)> open;
};

void PrintTo(const backend& b, std::ostream* os) {
    *os << b.name;
}

class StoreContract : public ::testing::TestWithParam<backend> {
  protected:
    void SetUp() override {
        // One directory per test: "Test/backend" flattened, so that
        // TearDown removes all of it.
        std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        std::replace(name.begin(), name.end(), '/', '-');
        dir_ = std::filesystem::temp_directory_path() /
               ("weft-store-" + std::to_string(::getpid()) + "-" + name);
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::unique_ptr<store> open() { return GetParam().open(dir_.string()); }
    std::filesystem::path dir_;
};

TEST_P(StoreContract, PutGetListDelete) {
    auto s = open();
    EXPECT_FALSE(s->get("volumes/a"));
    auto r1 = s->commit(txn().put("volumes/a", "1").put("volumes/b", "2").put("nodes/x", "n"));
    ASSERT_TRUE(r1);
    EXPECT_EQ(s->revision(), *r1);
    auto a = s->get("volumes/a");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->value, "1");
    EXPECT_EQ(a->revision, *r1);
    auto l = s->list("volumes/");
    ASSERT_EQ(l.size(), 2u);
    EXPECT_EQ(l[0].key, "volumes/a");
    EXPECT_EQ(l[1].key, "volumes/b");
    auto r2 = s->commit(txn().del("volumes/a"));
    ASSERT_TRUE(r2);
    EXPECT_GT(*r2, *r1);
    EXPECT_FALSE(s->get("volumes/a"));
    EXPECT_EQ(s->list("volumes/").size(), 1u);
    EXPECT_EQ(s->list("nodes/").size(), 1u);
}

TEST_P(StoreContract, ComparesGuardEveryChange) {
    auto s = open();
    // Create only if absent.
    ASSERT_TRUE(s->commit(txn().expect("k", 0).put("k", "v1")));
    EXPECT_FALSE(s->commit(txn().expect("k", 0).put("k", "again")));
    auto cur = s->get("k");
    ASSERT_TRUE(cur);
    EXPECT_EQ(cur->value, "v1");
    // A stale revision changes nothing, not even the other puts in the txn.
    ASSERT_TRUE(s->commit(txn().expect("k", cur->revision).put("k", "v2")));
    int64_t before = s->revision();
    EXPECT_FALSE(s->commit(txn().expect("k", cur->revision).put("k", "v3").put("other", "x")));
    EXPECT_EQ(s->get("k")->value, "v2");
    EXPECT_FALSE(s->get("other"));
    EXPECT_EQ(s->revision(), before);
}

TEST_P(StoreContract, BinaryValuesAndPrefixEdges) {
    auto s = open();
    std::string v("a\0b\xff", 4);
    ASSERT_TRUE(s->commit(txn().put("p/x", v).put("p", "no").put("q/x", "no").put("p/\x7f", "y")));
    EXPECT_EQ(s->get("p/x")->value, v);
    auto l = s->list("p/");
    ASSERT_EQ(l.size(), 2u);
    EXPECT_EQ(l[0].key, "p/x");
}

TEST_P(StoreContract, LaterOpsOverrideEarlierOnes) {
    // Puts in order, then deletes: the last put of a key wins, a delete
    // beats a put of the same key.
    auto s = open();
    ASSERT_TRUE(s->commit(txn().put("a", "1").put("a", "2").put("b", "x").del("b").del("b")));
    EXPECT_EQ(s->get("a")->value, "2");
    EXPECT_FALSE(s->get("b"));
}

TEST_P(StoreContract, SurvivesReopen) {
    int64_t rev;
    {
        auto s = open();
        auto r = s->commit(txn().put("volumes/a", "kept"));
        ASSERT_TRUE(r);
        rev = *r;
    }
    auto s = open();
    EXPECT_EQ(s->get("volumes/a")->value, "kept");
    EXPECT_EQ(s->revision(), rev);
    auto r = s->commit(txn().put("volumes/b", "x"));
    ASSERT_TRUE(r);
    EXPECT_GT(*r, rev);  // revisions never go back
}

TEST_P(StoreContract, ConcurrentIncrementsLoseNothing) {
    auto s = open();
    ASSERT_TRUE(s->commit(txn().put("counter", "0")));
    constexpr int threads = 4, each = 50;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&] {
            for (int i = 0; i < each;) {
                auto cur = s->get("counter");
                int n = std::stoi(cur->value);
                if (s->commit(txn()
                                  .expect("counter", cur->revision)
                                  .put("counter", std::to_string(n + 1))))
                    ++i;
            }
        });
    for (auto& t : ts) t.join();
    EXPECT_EQ(s->get("counter")->value, std::to_string(threads * each));
}

INSTANTIATE_TEST_SUITE_P(
    Backends, StoreContract,
    ::testing::Values(backend{"sqlite",
                              [](const std::string& dir) {
                                  return open_sqlite_store(dir + "/control.db");
                              }},
                      // One etcd cluster for the binary; each test its own key prefix.
                      backend{"etcd",
                              [](const std::string& dir) {
                                  return open_etcd_store(test::shared_etcd().endpoints(),
                                                         "/weft-test" + dir + "/");
                              }}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(SqliteStore, ABadPathIsASentence) {
    try {
        open_sqlite_store("/nonexistent-dir/x/control.db");
        FAIL() << "opened";
    } catch (const store_error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x/control.db"), std::string::npos);
    }
}

}  // namespace
}  // namespace weft::control
