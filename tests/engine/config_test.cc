#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "auth/dhchap_key.h"
#include "auth/tls_psk.h"
#include "engine/config.h"
#include "engine/config_applier.h"
#include "runtime/test_util.h"

namespace weft::engine {
namespace {

TEST(engine_config, sizes) {
    EXPECT_EQ(parse_size("4096").value(), 4096u);
    EXPECT_EQ(parse_size("1GiB").value(), 1ull << 30);
    EXPECT_EQ(parse_size("512M").value(), 512ull << 20);
    EXPECT_FALSE(parse_size("").ok());
    EXPECT_FALSE(parse_size("12parsecs").ok());
    EXPECT_FALSE(parse_size("99999999999999999999").ok());
    EXPECT_FALSE(parse_size("99999999999T").ok());
}

TEST(engine_config, state_round_trips_through_json) {
    std::string why;
    auto c =
        parse_config(R"({"listen": ["127.0.0.1:4420"], "pools": [{"name": "p", "path": "/p.img",
        "format_if_blank": false}], "subsystems": [{"nqn": "nqn.2026-11.io.weft:p:v", "allow_any_host": false,
        "hosts": ["nqn.2014-08.org.nvmexpress:uuid:1"], "namespaces": [{"nsid": 1, "type": "volume",
        "pool": "p", "volume": "v"}]}]})",
                     &why);
    ASSERT_TRUE(c.ok()) << why;
    std::string text = to_json_text(c.value());
    auto again = parse_config(text, &why);
    ASSERT_TRUE(again.ok()) << why;
    EXPECT_EQ(to_json_text(again.value()), text);
    EXPECT_FALSE(again.value().pools.at(0).format_if_blank);
    EXPECT_EQ(again.value().subsystems.at(0).hosts.size(), 1u);
    EXPECT_EQ(again.value().subsystems.at(0).namespaces.at(0).volume, "v");
}

TEST(engine_config, parses_a_full_file) {
    std::string why;
    auto c = parse_config(R"({
        "listen": ["127.0.0.1:4420"], "discovery_listen": ["127.0.0.1:8009"],
        "limits": {"max_queue_depth": 64},
        "subsystems": [{"nqn": "nqn.2026-11.io.weft:a", "hosts": ["nqn.h1"],
                        "namespaces": [{"nsid": 3, "type": "malloc", "size": "1MiB", "block_size": 4096}]}]})",
                          &why);
    ASSERT_TRUE(c.ok()) << why;
    EXPECT_EQ(c->listen.size(), 1u);
    EXPECT_EQ(c->limits.max_queue_depth, 64);
    ASSERT_EQ(c->subsystems.size(), 1u);
    EXPECT_FALSE(c->subsystems[0].allow_any_host);  // a host list means only those
    EXPECT_EQ(c->subsystems[0].namespaces[0].nsid, 3u);
    EXPECT_EQ(c->subsystems[0].namespaces[0].size, 1u << 20);
    EXPECT_EQ(c->subsystems[0].namespaces[0].block_size, 4096u);
}

TEST(engine_config, bad_files_say_why) {
    for (const char* bad :
         {"", "[1]", "{\"subsystems\": [{}]}", "{\"subsystems\": [{\"nqn\": 1}]}",
          "{\"subsystems\": [{\"nqn\": \"x\", \"namespaces\": [{\"size\": \"big\"}]}]}",
          "{\"listen\": \"127.0.0.1:1\"}",
          // Numbers out of their field's range, or not integers (the fuzzer's find).
          "{\"limits\": {\"max_queue_depth\": 70000}}", "{\"limits\": {\"max_transfer\": 1e300}}",
          "{\"limits\": {\"max_io_queues\": -1}}", "{\"limits\": {\"in_capsule_data\": 1.5}}",
          "{\"subsystems\": [{\"nqn\": \"x\", \"namespaces\": [{\"nsid\": 4294967296}]}]}"}) {
        std::string why;
        EXPECT_FALSE(parse_config(bad, &why).ok()) << bad;
        EXPECT_FALSE(why.empty()) << bad;
    }
}

TEST(engine_config, host_keys_round_trip_and_bad_ones_say_why) {
    const std::string host = "nqn.2014-08.org.nvmexpress:uuid:5b0c7a3e-8f0e-4a51-9d2c-1c2e3f4a5b6c";
    auto key = std::string(
        auth::format_dhchap_key(auth::generate_dhchap_key(auth::hash_id::sha384).value()).view());
    std::string good = "{\"host_keys\": [{\"host\": \"" + host + "\", \"dhchap_key\": \"" + key +
                       "\", \"dhgroups\": [\"ffdhe6144\"]}]}";
    std::string why;
    auto c = parse_config(good, &why);
    ASSERT_TRUE(c.ok()) << why;
    ASSERT_EQ(c.value().host_keys.size(), 1u);
    EXPECT_EQ(c.value().host_keys[0].dhchap_key.view(), key);
    auto again = parse_config(to_json_text(c.value()), &why);
    ASSERT_TRUE(again.ok()) << why;
    EXPECT_EQ(again.value().host_keys[0].dhgroups, std::vector<std::string>{"ffdhe6144"});
    std::string broken = key;
    broken[20] = broken[20] == 'A' ? 'B' : 'A';
    for (const std::string& bad : std::vector<std::string>{
             "{\"host_keys\": {}}", "{\"host_keys\": [1]}",
             "{\"host_keys\": [{\"host\": \"" + host + "\"}]}",
             "{\"host_keys\": [{\"host\": \"x\", \"dhchap_key\": \"" + key + "\"}]}",
             "{\"host_keys\": [{\"host\": \"" + host + "\", \"dhchap_key\": \"" + broken + "\"}]}",
             "{\"host_keys\": [{\"host\": \"" + host + "\", \"dhchap_key\": 7}]}",
             "{\"host_keys\": [{\"host\": \"" + host + "\", \"dhchap_key\": \"" + key +
                 "\", \"digests\": [\"sha1\"]}]}",
             "{\"host_keys\": [{\"host\": \"" + host + "\", \"dhchap_key\": \"" + key +
                 "\"}, {\"host\": \"" + host + "\", \"dhchap_key\": \"" + key + "\"}]}"}) {
        why.clear();
        EXPECT_FALSE(parse_config(bad, &why).ok()) << bad;
        EXPECT_FALSE(why.empty()) << bad;
        // A sentence never repeats the secret.
        EXPECT_EQ(why.find(key.substr(10, 20)), std::string::npos) << why;
        EXPECT_EQ(why.find(broken.substr(10, 20)), std::string::npos) << why;
    }
}

TEST(engine_config, tls_keys_and_mode) {
    const std::string host = "nqn.2014-08.org.nvmexpress:uuid:5b0c7a3e-8f0e-4a51-9d2c-1c2e3f4a5b6c";
    auto tk = std::string(
        auth::format_tls_key(auth::generate_tls_key(auth::hash_id::sha384).value()).view());
    std::string good = "{\"tls\": \"allowed\", \"host_keys\": [{\"host\": \"" + host +
                       "\", \"tls_key\": \"" + tk + "\"}]}";
    std::string why;
    auto c = parse_config(good, &why);
    ASSERT_TRUE(c.ok()) << why;
    EXPECT_EQ(c.value().tls, "allowed");
    ASSERT_EQ(c.value().host_keys.size(), 1u);
    EXPECT_EQ(c.value().host_keys[0].tls_key.view(), tk);
    EXPECT_TRUE(c.value().host_keys[0].dhchap_key.empty());
    std::string text = to_json_text(c.value());
    auto again = parse_config(text, &why);
    ASSERT_TRUE(again.ok()) << why;
    EXPECT_EQ(again.value().tls, "allowed");
    EXPECT_EQ(again.value().host_keys[0].tls_key.view(), tk);
    EXPECT_EQ(text.find("dhchap_key"), std::string::npos);
    std::string broken = tk;
    broken[20] = broken[20] == 'A' ? 'B' : 'A';
    for (const std::string& bad : std::vector<std::string>{
             "{\"tls\": \"sometimes\"}",
             "{\"host_keys\": [{\"host\": \"" + host + "\", \"tls_key\": \"" + broken + "\"}]}",
             // A DHHC-1 secret where a TLS key belongs.
             "{\"host_keys\": [{\"host\": \"" + host + "\", \"tls_key\": \"" +
                 std::string(
                     auth::format_dhchap_key(auth::generate_dhchap_key(auth::hash_id::none).value())
                         .view()) +
                 "\"}]}",
             // DH-HMAC-CHAP options without a DH-HMAC-CHAP secret.
             "{\"host_keys\": [{\"host\": \"" + host + "\", \"tls_key\": \"" + tk +
                 "\", \"digests\": [\"sha256\"]}]}"}) {
        why.clear();
        EXPECT_FALSE(parse_config(bad, &why).ok()) << bad;
        EXPECT_FALSE(why.empty()) << bad;
        EXPECT_EQ(why.find(tk.substr(16, 20)), std::string::npos) << why;
        EXPECT_EQ(why.find(broken.substr(16, 20)), std::string::npos) << why;
    }
}

// The reload path: what SIGHUP applies to a running target.
TEST(config_applier, adds_resizes_and_removes_namespaces) {
    std::string dir = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                      "/weft-cfg-" + std::to_string(getpid());
    std::filesystem::create_directories(dir);
    test::run_reactors(1, [&]() -> task<void> {
        nvmf::target tgt;
        config_applier applier(tgt);
        std::string why;
        auto v1 = parse_config(R"({"subsystems": [{"nqn": "nqn.2026-11.io.weft:r", "namespaces": [
            {"nsid": 1, "type": "file", "path": ")" +
                                   dir + R"(/a.img", "size": "4MiB"}]}]})",
                               &why);
        CO_ASSERT_TRUE(v1.ok());
        EXPECT_TRUE((co_await applier.apply(v1.value())).empty());
        auto ss = tgt.find("nqn.2026-11.io.weft:r");
        CO_ASSERT_TRUE(ss != nullptr);
        uint64_t gen = ss->ns_generation();
        EXPECT_EQ(ss->namespaces()->at(1)->dev().num_blocks(), 8192u);

        // Grow nsid 1, add nsid 2, restrict hosts.
        auto v2 = parse_config(
            R"({"subsystems": [{"nqn": "nqn.2026-11.io.weft:r", "hosts": ["nqn.h"], "namespaces": [
            {"nsid": 1, "type": "file", "path": ")" +
                dir + R"(/a.img", "size": "8MiB"},
            {"nsid": 2, "type": "malloc", "size": "1MiB"}]}]})",
            &why);
        CO_ASSERT_TRUE(v2.ok());
        EXPECT_TRUE((co_await applier.apply(v2.value())).empty());
        auto table = ss->namespaces();
        EXPECT_EQ(table->size(), 2u);
        EXPECT_EQ(table->at(1)->dev().num_blocks(), 16384u);
        EXPECT_GT(ss->ns_generation(), gen);
        EXPECT_FALSE(ss->host_allowed("nqn.other"));
        EXPECT_TRUE(ss->host_allowed("nqn.h"));
        EXPECT_EQ(std::filesystem::file_size(dir + "/a.img"), 8u << 20);

        // A broken entry is reported; the rest still applies (nsid 2 goes).
        auto v3 = parse_config(R"({"subsystems": [{"nqn": "nqn.2026-11.io.weft:r", "namespaces": [
            {"nsid": 1, "type": "file", "path": ")" +
                                   dir + R"(/a.img", "size": "8MiB"},
            {"nsid": 3, "type": "tape", "size": "1MiB"}]}]})",
                               &why);
        CO_ASSERT_TRUE(v3.ok());
        auto problems = co_await applier.apply(v3.value());
        EXPECT_EQ(problems.size(), 1u);
        EXPECT_EQ(ss->namespaces()->size(), 1u);

        // Nothing configured: the subsystem goes.
        engine_config none;
        EXPECT_TRUE((co_await applier.apply(none)).empty());
        EXPECT_EQ(tgt.find("nqn.2026-11.io.weft:r"), nullptr);
        co_return;
    });
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace weft::engine

namespace weft::engine {
namespace {

// A pool file is created on first use, its volume served as a namespace,
// grown on reload, and found again (not re-created) by a new engine.
TEST(config_applier, pool_volumes_are_created_grown_and_imported) {
    std::string dir = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                      "/weft-pool-cfg-" + std::to_string(getpid());
    std::filesystem::create_directories(dir);
    auto config = [&](const char* vol_size) {
        std::string why;
        auto c = parse_config(R"({"pools": [{"name": "p0", "path": ")" + dir +
                                  R"(/p0.img", "size": "64MiB", "cluster_size": "1MiB"}],
            "subsystems": [{"nqn": "nqn.2026-11.io.weft:v", "namespaces": [
              {"nsid": 1, "type": "volume", "pool": "p0", "volume": "vol1", "size": ")" +
                                  std::string(vol_size) + R"("}]}]})",
                              &why);
        EXPECT_TRUE(c.ok()) << why;
        return c.value();
    };
    test::run_reactors(1, [&]() -> task<void> {
        {
            nvmf::target tgt;
            config_applier applier(tgt);
            auto problems = co_await applier.apply(config("8MiB"));
            EXPECT_TRUE(problems.empty()) << (problems.empty() ? "" : problems[0]);
            auto ss = tgt.find("nqn.2026-11.io.weft:v");
            CO_ASSERT_TRUE(ss != nullptr);
            EXPECT_EQ(ss->namespaces()->at(1)->dev().size_bytes(), 8u << 20);
            problems = co_await applier.apply(config("16MiB"));
            EXPECT_TRUE(problems.empty()) << (problems.empty() ? "" : problems[0]);
            EXPECT_EQ(ss->namespaces()->at(1)->dev().size_bytes(), 16u << 20);
            engine_config none;
            co_await applier.apply(none);
        }
        {
            // A restart: the pool and the grown volume are imported as they were.
            nvmf::target tgt;
            config_applier applier(tgt);
            auto problems = co_await applier.apply(config("16MiB"));
            EXPECT_TRUE(problems.empty()) << (problems.empty() ? "" : problems[0]);
            auto ss = tgt.find("nqn.2026-11.io.weft:v");
            CO_ASSERT_TRUE(ss != nullptr);
            EXPECT_EQ(ss->namespaces()->at(1)->dev().size_bytes(), 16u << 20);
            engine_config none;
            co_await applier.apply(none);
        }
    });
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace weft::engine
