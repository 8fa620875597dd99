// The management API of a real weft-engine process, over gRPC on loopback:
// every RPC's happy path, its input checks and status codes, rollback when
// the state cannot be saved, concurrent requests, persistence across a
// restart, and the Prometheus page.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "auth/dhchap_key.h"
#include "auth/tls_psk.h"
#include "weft/engine/v1/engine.grpc.pb.h"

extern char** environ;

namespace {

namespace v1 = weft::engine::v1;
namespace fs = std::filesystem;
using grpc::StatusCode;

// weft-engine as a child process on ephemeral ports.
class engine_process {
  public:
    explicit engine_process(const fs::path& data) : data_(data) {}
    ~engine_process() { stop(); }

    // Starts it and waits for its API line; false (with the log) if it exits.
    bool start(std::vector<std::string> extra = {}) {
        log_ = data_ / "engine.log";
        std::vector<std::string> args = {
            WEFT_ENGINE_BINARY, "--data-dir",  data_.string(), "--cores",     "0",
            "--listen",         "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--metrics-listen",
            "127.0.0.1:0"};
        args.insert(args.end(), extra.begin(), extra.end());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) return false;
        for (int i = 0; i < 400; ++i) {
            std::string text = log();
            std::smatch m;
            static const std::regex api("management API on ([0-9.]+:[0-9]+)");
            static const std::regex met("metrics on http://([0-9.]+):([0-9]+)/metrics");
            static const std::regex nvme("listening on 127\\.0\\.0\\.1:([0-9]+)");
            if (std::regex_search(text, m, api)) {
                api_addr = m[1];
                if (std::regex_search(text, m, met)) metrics_port = std::stoi(m[2]);
                if (std::regex_search(text, m, nvme)) nvme_port = std::stoi(m[1]);
                channel_ = grpc::CreateChannel(api_addr, grpc::InsecureChannelCredentials());
                stub = v1::Engine::NewStub(channel_);
                return true;
            }
            int st;
            if (waitpid(pid_, &st, WNOHANG) == pid_) {
                exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                pid_ = -1;
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        return false;
    }
    int stop() {
        if (pid_ <= 0) return exit_code;
        stub.reset();
        channel_.reset();
        kill(pid_, SIGTERM);
        int st = 0;
        waitpid(pid_, &st, 0);
        pid_ = -1;
        exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return exit_code;
    }
    std::string log() const {
        std::ifstream in(log_);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    std::unique_ptr<v1::Engine::Stub> stub;
    std::string api_addr;
    int metrics_port = 0;
    int nvme_port = 0;
    int exit_code = -1;

  private:
    fs::path data_;
    fs::path log_;
    pid_t pid_ = -1;
    std::shared_ptr<grpc::Channel> channel_;
};

class api : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/weft-api-XXXXXX";
        dir = mkdtemp(tmpl);
        eng = std::make_unique<engine_process>(dir);
        ASSERT_TRUE(eng->start()) << eng->log();
    }
    void TearDown() override {
        eng.reset();
        fs::remove_all(dir);
    }

    template <typename Req, typename Rep, typename M>
    grpc::Status call(M method, const Req& req, Rep* rep) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        return ((*eng->stub).*method)(&ctx, req, rep);
    }
    v1::Pool make_pool(const std::string& name, uint64_t size = 64 << 20) {
        v1::CreatePoolRequest r;
        r.set_name(name);
        r.set_path((dir / (name + ".img")).string());
        r.set_size(size);
        r.set_cluster_size(1 << 20);
        v1::Pool p;
        auto s = call(&v1::Engine::Stub::CreatePool, r, &p);
        EXPECT_TRUE(s.ok()) << s.error_message();
        return p;
    }
    grpc::Status make_volume(const std::string& pool, const std::string& name, uint64_t size,
                             bool thick, v1::Volume* out = nullptr) {
        v1::CreateVolumeRequest r;
        r.set_pool(pool);
        r.set_name(name);
        r.set_size_bytes(size);
        r.set_thick(thick);
        v1::Volume v;
        return call(&v1::Engine::Stub::CreateVolume, r, out ? out : &v);
    }
    std::vector<v1::Volume> volumes(const std::string& pool = "") {
        v1::ListVolumesRequest r;
        r.set_pool(pool);
        v1::ListVolumesReply rep;
        EXPECT_TRUE(call(&v1::Engine::Stub::ListVolumes, r, &rep).ok());
        return {rep.volumes().begin(), rep.volumes().end()};
    }
    std::vector<v1::Pool> pools() {
        v1::ListPoolsReply rep;
        EXPECT_TRUE(call(&v1::Engine::Stub::ListPools, v1::ListPoolsRequest{}, &rep).ok());
        return {rep.pools().begin(), rep.pools().end()};
    }
    std::vector<v1::Share> shares() {
        v1::ListSharesReply rep;
        EXPECT_TRUE(call(&v1::Engine::Stub::ListShares, v1::ListSharesRequest{}, &rep).ok());
        return {rep.shares().begin(), rep.shares().end()};
    }
    static v1::VolumeRef ref(const std::string& pool, const std::string& name) {
        v1::VolumeRef r;
        r.set_pool(pool);
        r.set_name(name);
        return r;
    }
    grpc::Status share(const std::string& pool, const std::string& vol,
                       std::vector<std::string> hosts, bool any = false,
                       const std::string& nqn = "", v1::Share* out = nullptr) {
        v1::ShareVolumeRequest r;
        *r.mutable_volume() = ref(pool, vol);
        r.set_nqn(nqn);
        for (auto& h : hosts) r.add_allowed_hosts(h);
        r.set_allow_any_host(any);
        v1::Share s;
        return call(&v1::Engine::Stub::ShareVolume, r, out ? out : &s);
    }

    fs::path dir;
    std::unique_ptr<engine_process> eng;
};

TEST_F(api, pool_lifecycle_and_input_checks) {
    v1::CreatePoolRequest r;
    v1::Pool p;
    r.set_name("bad name");
    r.set_path((dir / "x.img").string());
    r.set_size(64 << 20);
    EXPECT_EQ(call(&v1::Engine::Stub::CreatePool, r, &p).error_code(),
              StatusCode::INVALID_ARGUMENT);
    r.set_name("p0");
    r.set_cluster_size(3000);
    EXPECT_EQ(call(&v1::Engine::Stub::CreatePool, r, &p).error_code(),
              StatusCode::INVALID_ARGUMENT);
    r.set_cluster_size(0);
    r.set_size(0);  // no file and no size to make one
    EXPECT_EQ(call(&v1::Engine::Stub::CreatePool, r, &p).error_code(), StatusCode::NOT_FOUND);
    EXPECT_FALSE(fs::exists(dir / "x.img"));
    EXPECT_TRUE(pools().empty());

    v1::Pool made = make_pool("p0");
    EXPECT_EQ(made.name(), "p0");
    EXPECT_EQ(made.cluster_size(), 1u << 20);
    EXPECT_GT(made.capacity_bytes(), 0u);
    EXPECT_LE(made.capacity_bytes(), 64u << 20);
    EXPECT_EQ(made.used_bytes(), 0u);
    EXPECT_EQ(made.uuid().size(), 36u);

    // The same name, or the same file under another name, is refused.
    r.set_name("p0");
    r.set_path((dir / "other.img").string());
    r.set_size(64 << 20);
    EXPECT_EQ(call(&v1::Engine::Stub::CreatePool, r, &p).error_code(), StatusCode::ALREADY_EXISTS);
    EXPECT_FALSE(fs::exists(dir / "other.img"));
    r.set_name("p1");
    r.set_path((dir / "p0.img").string());
    EXPECT_EQ(call(&v1::Engine::Stub::CreatePool, r, &p).error_code(), StatusCode::ALREADY_EXISTS);

    // Import: not a pool, no file, the loaded pool's own file.
    {
        std::ofstream(dir / "blank.img") << std::string(1 << 20, '\0');
        v1::ImportPoolRequest ir;
        ir.set_path((dir / "blank.img").string());
        EXPECT_EQ(call(&v1::Engine::Stub::ImportPool, ir, &p).error_code(), StatusCode::NOT_FOUND);
        ir.set_path((dir / "nothing.img").string());
        EXPECT_EQ(call(&v1::Engine::Stub::ImportPool, ir, &p).error_code(), StatusCode::NOT_FOUND);
        ir.set_path((dir / "p0.img").string());
        EXPECT_EQ(call(&v1::Engine::Stub::ImportPool, ir, &p).error_code(),
                  StatusCode::ALREADY_EXISTS);
    }
    ASSERT_EQ(pools().size(), 1u);

    // Destroy wipes it: the file no longer holds a pool, and the name is free.
    v1::DestroyPoolRequest d;
    v1::Empty e;
    d.set_name("nope");
    EXPECT_EQ(call(&v1::Engine::Stub::DestroyPool, d, &e).error_code(), StatusCode::NOT_FOUND);
    ASSERT_TRUE(make_volume("p0", "v", 4 << 20, false).ok());
    d.set_name("p0");
    ASSERT_TRUE(call(&v1::Engine::Stub::DestroyPool, d, &e).ok());
    EXPECT_TRUE(pools().empty());
    v1::ImportPoolRequest ir;
    ir.set_path((dir / "p0.img").string());
    EXPECT_EQ(call(&v1::Engine::Stub::ImportPool, ir, &p).error_code(), StatusCode::NOT_FOUND);
    // A pool made elsewhere is imported under its own name.
    make_pool("p2");
    d.set_name("p2");
    eng->stop();
    fs::remove(dir / "engine-state.json");  // the engine forgets p2; the file keeps it
    ASSERT_TRUE(eng->start()) << eng->log();
    EXPECT_TRUE(pools().empty());
    ir.set_path((dir / "p2.img").string());
    ASSERT_TRUE(call(&v1::Engine::Stub::ImportPool, ir, &p).ok());
    EXPECT_EQ(p.name(), "p2");
}

TEST_F(api, volumes_snapshots_clones) {
    make_pool("p", 64 << 20);
    v1::Volume v;
    ASSERT_TRUE(make_volume("p", "thin", 16 << 20, false, &v).ok());
    EXPECT_TRUE(v.thin());
    EXPECT_EQ(v.size_bytes(), 16u << 20);
    EXPECT_EQ(v.allocated_bytes(), 0u);
    ASSERT_TRUE(make_volume("p", "thick", 8 << 20, true, &v).ok());
    EXPECT_FALSE(v.thin());
    EXPECT_EQ(v.allocated_bytes(), 8u << 20);
    std::string thick_uuid = v.uuid();

    EXPECT_EQ(make_volume("p", "thin", 1 << 20, false).error_code(), StatusCode::ALREADY_EXISTS);
    EXPECT_EQ(make_volume("p", "z", 0, false).error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(make_volume("p", "z", 1000, false).error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(make_volume("p", "-z", 4096, false).error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(make_volume("q", "z", 4096, false).error_code(), StatusCode::NOT_FOUND);
    // More than the pool holds, thick: refused, and nothing is left.
    EXPECT_EQ(make_volume("p", "huge", 1ull << 30, true).error_code(),
              StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(volumes("p").size(), 2u);

    // Resize: grow; a snapshot cannot; by UUID; a bad UUID; a wrong pair.
    v1::ResizeVolumeRequest rr;
    *rr.mutable_volume() = ref("p", "thin");
    rr.set_size_bytes(32 << 20);
    ASSERT_TRUE(call(&v1::Engine::Stub::ResizeVolume, rr, &v).ok());
    EXPECT_EQ(v.size_bytes(), 32u << 20);
    rr.mutable_volume()->set_name("");
    rr.mutable_volume()->set_uuid("not-a-uuid");
    EXPECT_EQ(call(&v1::Engine::Stub::ResizeVolume, rr, &v).error_code(),
              StatusCode::INVALID_ARGUMENT);
    rr.mutable_volume()->set_uuid(thick_uuid);
    rr.mutable_volume()->set_name("thin");
    EXPECT_EQ(call(&v1::Engine::Stub::ResizeVolume, rr, &v).error_code(),
              StatusCode::INVALID_ARGUMENT);
    rr.mutable_volume()->set_name("");
    rr.set_size_bytes(12 << 20);
    ASSERT_TRUE(call(&v1::Engine::Stub::ResizeVolume, rr, &v).ok());
    EXPECT_EQ(v.name(), "thick");
    EXPECT_EQ(v.size_bytes(), 12u << 20);

    // Snapshot, clone, and the rules between them.
    v1::CreateSnapshotRequest sr;
    *sr.mutable_volume() = ref("p", "thin");
    sr.set_name("snap");
    v1::Volume snap;
    ASSERT_TRUE(call(&v1::Engine::Stub::CreateSnapshot, sr, &snap).ok());
    EXPECT_TRUE(snap.snapshot());
    EXPECT_TRUE(snap.read_only());
    EXPECT_EQ(call(&v1::Engine::Stub::CreateSnapshot, sr, &v).error_code(),
              StatusCode::ALREADY_EXISTS);
    *sr.mutable_volume() = ref("p", "snap");
    sr.set_name("snap2");
    EXPECT_EQ(call(&v1::Engine::Stub::CreateSnapshot, sr, &v).error_code(),
              StatusCode::FAILED_PRECONDITION);

    v1::CreateCloneRequest cr;
    *cr.mutable_snapshot() = ref("p", "thin");
    cr.set_name("clone");
    EXPECT_EQ(call(&v1::Engine::Stub::CreateClone, cr, &v).error_code(),
              StatusCode::FAILED_PRECONDITION);
    *cr.mutable_snapshot() = ref("p", "snap");
    v1::Volume clone;
    ASSERT_TRUE(call(&v1::Engine::Stub::CreateClone, cr, &clone).ok());
    EXPECT_EQ(clone.parent_uuid(), snap.uuid());
    EXPECT_FALSE(clone.read_only());

    rr.mutable_volume()->set_uuid(snap.uuid());
    rr.set_size_bytes(64 << 20);
    EXPECT_EQ(call(&v1::Engine::Stub::ResizeVolume, rr, &v).error_code(),
              StatusCode::FAILED_PRECONDITION);

    v1::DestroyVolumeRequest dr;
    v1::Empty e;
    *dr.mutable_volume() = ref("p", "snap");
    EXPECT_EQ(call(&v1::Engine::Stub::DestroyVolume, dr, &e).error_code(),
              StatusCode::FAILED_PRECONDITION);
    *dr.mutable_volume() = ref("p", "clone");
    ASSERT_TRUE(call(&v1::Engine::Stub::DestroyVolume, dr, &e).ok());
    *dr.mutable_volume() = ref("p", "snap");
    ASSERT_TRUE(call(&v1::Engine::Stub::DestroyVolume, dr, &e).ok());
    EXPECT_EQ(call(&v1::Engine::Stub::DestroyVolume, dr, &e).error_code(), StatusCode::NOT_FOUND);
    // Destroying the thick volume returns its clusters.
    *dr.mutable_volume() = ref("p", "thick");
    ASSERT_TRUE(call(&v1::Engine::Stub::DestroyVolume, dr, &e).ok());
    EXPECT_EQ(pools().at(0).used_bytes(), 0u);
    EXPECT_EQ(volumes().size(), 1u);
}

TEST_F(api, shares_and_their_rules) {
    make_pool("p");
    ASSERT_TRUE(make_volume("p", "v", 8 << 20, false).ok());
    ASSERT_TRUE(make_volume("p", "w", 8 << 20, false).ok());
    const std::string host = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";

    EXPECT_EQ(share("p", "v", {}).error_code(),
              StatusCode::INVALID_ARGUMENT);  // nobody could connect
    EXPECT_EQ(share("p", "v", {"not an nqn"}).error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(share("p", "v", {host}, false, "bad-nqn").error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(share("p", "nope", {host}).error_code(), StatusCode::NOT_FOUND);
    EXPECT_TRUE(shares().empty());

    v1::Share s;
    ASSERT_TRUE(share("p", "v", {host}, false, "", &s).ok());
    EXPECT_EQ(s.nqn(), "nqn.2026-11.io.weft:p:v");
    EXPECT_EQ(s.nsid(), 1u);
    ASSERT_EQ(s.allowed_hosts_size(), 1);
    ASSERT_GE(s.listeners_size(), 1);
    EXPECT_EQ(s.listeners(0), "127.0.0.1:" + std::to_string(eng->nvme_port));
    // Again with the same NQN: the host list is replaced; another NQN: no.
    ASSERT_TRUE(share("p", "v", {}, true, "nqn.2026-11.io.weft:p:v", &s).ok());
    EXPECT_TRUE(s.allow_any_host());
    EXPECT_EQ(share("p", "v", {host}, false, "nqn.2026-11.io.weft:other").error_code(),
              StatusCode::ALREADY_EXISTS);
    // Another volume cannot take the NQN.
    EXPECT_EQ(share("p", "w", {host}, false, "nqn.2026-11.io.weft:p:v").error_code(),
              StatusCode::ALREADY_EXISTS);
    ASSERT_EQ(shares().size(), 1u);
    EXPECT_EQ(volumes("p").at(0).share_nqn(), "nqn.2026-11.io.weft:p:v");

    // A shared volume, or its pool, cannot be destroyed.
    v1::Empty e;
    v1::DestroyVolumeRequest dr;
    *dr.mutable_volume() = ref("p", "v");
    EXPECT_EQ(call(&v1::Engine::Stub::DestroyVolume, dr, &e).error_code(),
              StatusCode::FAILED_PRECONDITION);
    v1::DestroyPoolRequest dp;
    dp.set_name("p");
    EXPECT_EQ(call(&v1::Engine::Stub::DestroyPool, dp, &e).error_code(),
              StatusCode::FAILED_PRECONDITION);
    // Resize of a shared volume reaches the served namespace.
    v1::ResizeVolumeRequest rr;
    *rr.mutable_volume() = ref("p", "v");
    rr.set_size_bytes(16 << 20);
    v1::Volume v;
    ASSERT_TRUE(call(&v1::Engine::Stub::ResizeVolume, rr, &v).ok());

    v1::UnshareVolumeRequest ur;
    *ur.mutable_volume() = ref("p", "v");
    ASSERT_TRUE(call(&v1::Engine::Stub::UnshareVolume, ur, &e).ok());
    EXPECT_EQ(call(&v1::Engine::Stub::UnshareVolume, ur, &e).error_code(), StatusCode::NOT_FOUND);
    EXPECT_TRUE(shares().empty());
    ASSERT_TRUE(call(&v1::Engine::Stub::DestroyVolume, dr, &e).ok());
}

TEST_F(api, listeners) {
    v1::AddListenerRequest r;
    v1::Listener l;
    r.set_address("localhost");
    EXPECT_EQ(call(&v1::Engine::Stub::AddListener, r, &l).error_code(),
              StatusCode::INVALID_ARGUMENT);
    r.set_address("127.0.0.1:" + std::to_string(eng->nvme_port));
    EXPECT_EQ(call(&v1::Engine::Stub::AddListener, r, &l).error_code(), StatusCode::ALREADY_EXISTS);
    r.set_address("127.0.0.1:0");
    ASSERT_TRUE(call(&v1::Engine::Stub::AddListener, r, &l).ok());
    EXPECT_NE(l.address(), "127.0.0.1:0");
    v1::ListListenersReply all;
    ASSERT_TRUE(call(&v1::Engine::Stub::ListListeners, v1::ListListenersRequest{}, &all).ok());
    EXPECT_EQ(all.listeners_size(), 2);
    EXPECT_EQ(all.listeners(1).address(), l.address());
    // Persisted: back after a restart, on the same port.
    eng->stop();
    ASSERT_TRUE(eng->start()) << eng->log();
    all.Clear();
    ASSERT_TRUE(call(&v1::Engine::Stub::ListListeners, v1::ListListenersRequest{}, &all).ok());
    bool found = false;
    for (auto& x : all.listeners()) found |= x.address() == l.address();
    EXPECT_TRUE(found) << eng->log();
}

TEST_F(api, host_keys_are_checked_listed_without_secrets_and_saved_privately) {
    const std::string host = "nqn.2014-08.org.nvmexpress:uuid:5b0c7a3e-8f0e-4a51-9d2c-1c2e3f4a5b6c";
    auto key = [](weft::auth::hash_id t) {
        return std::string(
            weft::auth::format_dhchap_key(weft::auth::generate_dhchap_key(t).value()).view());
    };
    const std::string hk = key(weft::auth::hash_id::sha256), ck = key(weft::auth::hash_id::none);
    v1::SetHostKeyRequest r;
    v1::HostKey out;
    auto code = [&] { return call(&v1::Engine::Stub::SetHostKey, r, &out).error_code(); };
    // Bad input: each refused with a sentence, nothing saved.
    r.set_host_nqn("not-an-nqn");
    r.set_dhchap_key(hk);
    EXPECT_EQ(code(), StatusCode::INVALID_ARGUMENT);
    r.set_host_nqn(host);
    r.set_dhchap_key(hk.substr(0, hk.size() - 6) + "AAAAA:");  // CRC no longer matches
    EXPECT_EQ(code(), StatusCode::INVALID_ARGUMENT);
    r.set_dhchap_key(hk);
    r.set_dhchap_ctrl_key(hk);  // the same secret both ways
    EXPECT_EQ(code(), StatusCode::INVALID_ARGUMENT);
    r.set_dhchap_ctrl_key(ck);
    r.add_digests("md5");
    EXPECT_EQ(code(), StatusCode::INVALID_ARGUMENT);
    r.clear_digests();
    r.add_dhgroups("ffdhe1024");
    EXPECT_EQ(code(), StatusCode::INVALID_ARGUMENT);
    r.clear_dhgroups();
    r.add_digests("sha512");
    r.add_dhgroups("ffdhe3072");
    r.add_dhgroups("null");
    ASSERT_EQ(code(), StatusCode::OK);
    EXPECT_EQ(out.host_nqn(), host);
    EXPECT_TRUE(out.bidirectional());
    EXPECT_EQ(out.key_transform(), "sha256");
    ASSERT_EQ(out.dhgroups_size(), 2);
    EXPECT_EQ(out.dhgroups(0), "ffdhe3072");
    // Listed, never with the secrets.
    v1::ListHostKeysReply all;
    ASSERT_TRUE(call(&v1::Engine::Stub::ListHostKeys, v1::ListHostKeysRequest{}, &all).ok());
    ASSERT_EQ(all.host_keys_size(), 1);
    EXPECT_EQ(all.host_keys(0).DebugString().find(hk.substr(10, 20)), std::string::npos);
    // Saved in a file only its owner reads; the log has no secret.
    auto st = fs::status(dir / "engine-state.json");
    EXPECT_EQ(st.permissions() & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
    EXPECT_EQ(eng->log().find(hk.substr(10, 20)), std::string::npos);
    EXPECT_EQ(eng->stop(), 0);
    ASSERT_TRUE(eng->start()) << eng->log();
    all.Clear();
    ASSERT_TRUE(call(&v1::Engine::Stub::ListHostKeys, v1::ListHostKeysRequest{}, &all).ok());
    ASSERT_EQ(all.host_keys_size(), 1);
    EXPECT_EQ(all.host_keys(0).digests(0), "sha512");
    // Removed once; the second time it is not there.
    v1::RemoveHostKeyRequest rr;
    rr.set_host_nqn(host);
    v1::Empty e;
    EXPECT_TRUE(call(&v1::Engine::Stub::RemoveHostKey, rr, &e).ok());
    EXPECT_EQ(call(&v1::Engine::Stub::RemoveHostKey, rr, &e).error_code(), StatusCode::NOT_FOUND);
    EXPECT_EQ(eng->log().find(hk.substr(10, 20)), std::string::npos);
}

TEST_F(api, tls_keys_are_set_alone_or_with_dhchap_and_listed_without_secrets) {
    const std::string host = "nqn.2014-08.org.nvmexpress:uuid:6c1d8b4f-9a1f-4b62-8e3d-2d3f4a5b6c7d";
    const std::string tk =
        std::string(weft::auth::format_tls_key(
                        weft::auth::generate_tls_key(weft::auth::hash_id::sha384).value())
                        .view());
    v1::SetHostKeyRequest r;
    v1::HostKey out;
    auto code = [&] { return call(&v1::Engine::Stub::SetHostKey, r, &out).error_code(); };
    r.set_host_nqn(host);
    EXPECT_EQ(code(), StatusCode::INVALID_ARGUMENT);  // no secret at all
    std::string damaged = tk;
    damaged[20] = damaged[20] == 'A' ? 'B' : 'A';  // same length, the CRC no longer matches
    r.set_tls_key(damaged);
    EXPECT_EQ(code(), StatusCode::INVALID_ARGUMENT);
    r.set_tls_key(tk);
    ASSERT_EQ(code(), StatusCode::OK);
    EXPECT_TRUE(out.tls());
    EXPECT_EQ(out.tls_hash(), "sha384");
    EXPECT_FALSE(out.dhchap());
    v1::ListHostKeysReply all;
    ASSERT_TRUE(call(&v1::Engine::Stub::ListHostKeys, v1::ListHostKeysRequest{}, &all).ok());
    ASSERT_EQ(all.host_keys_size(), 1);
    EXPECT_TRUE(all.host_keys(0).tls());
    EXPECT_EQ(all.host_keys(0).DebugString().find(tk.substr(16, 20)), std::string::npos);
    // Both kinds: the reply says so; a restart keeps them.
    r.set_dhchap_key(
        std::string(weft::auth::format_dhchap_key(
                        weft::auth::generate_dhchap_key(weft::auth::hash_id::none).value())
                        .view()));
    ASSERT_EQ(code(), StatusCode::OK);
    EXPECT_TRUE(out.tls() && out.dhchap());
    EXPECT_EQ(eng->stop(), 0);
    ASSERT_TRUE(eng->start()) << eng->log();
    all.Clear();
    ASSERT_TRUE(call(&v1::Engine::Stub::ListHostKeys, v1::ListHostKeysRequest{}, &all).ok());
    ASSERT_EQ(all.host_keys_size(), 1);
    EXPECT_TRUE(all.host_keys(0).tls() && all.host_keys(0).dhchap());
    // A new DH-HMAC-CHAP secret alone keeps the TLS key, and a TLS key alone
    // keeps DH-HMAC-CHAP (a set never turns authentication off by omission).
    r.clear_tls_key();
    r.set_dhchap_key(
        std::string(weft::auth::format_dhchap_key(
                        weft::auth::generate_dhchap_key(weft::auth::hash_id::sha256).value())
                        .view()));
    ASSERT_EQ(code(), StatusCode::OK);
    EXPECT_TRUE(out.tls() && out.dhchap());
    EXPECT_EQ(out.key_transform(), "sha256");
    r.clear_dhchap_key();
    r.set_tls_key(tk);
    ASSERT_EQ(code(), StatusCode::OK);
    EXPECT_TRUE(out.tls() && out.dhchap());
    EXPECT_EQ(eng->log().find(tk.substr(16, 20)), std::string::npos);
}

TEST_F(api, state_survives_a_restart) {
    make_pool("p");
    ASSERT_TRUE(make_volume("p", "v", 8 << 20, false).ok());
    ASSERT_TRUE(share("p", "v", {}, true).ok());
    v1::CreateSnapshotRequest sr;
    *sr.mutable_volume() = ref("p", "v");
    sr.set_name("s");
    v1::Volume snap;
    ASSERT_TRUE(call(&v1::Engine::Stub::CreateSnapshot, sr, &snap).ok());
    EXPECT_EQ(eng->stop(), 0);
    ASSERT_TRUE(eng->start()) << eng->log();
    ASSERT_EQ(pools().size(), 1u);
    EXPECT_EQ(volumes("p").size(), 2u);
    auto sh = shares();
    ASSERT_EQ(sh.size(), 1u);
    EXPECT_EQ(sh[0].volume(), "v");
    EXPECT_TRUE(sh[0].allow_any_host());
    EXPECT_NE(eng->log().find("namespace 1: volume p/v"), std::string::npos) << eng->log();
}

TEST_F(api, a_pool_whose_disk_is_gone_is_shown_and_can_be_forgotten) {
    make_pool("gone");
    make_pool("here");
    ASSERT_TRUE(make_volume("here", "v", 4 << 20, false).ok());
    ASSERT_TRUE(make_volume("gone", "g", 4 << 20, false).ok());
    ASSERT_TRUE(share("gone", "g", {}, true).ok());
    eng->stop();
    fs::rename(dir / "gone.img", dir / "elsewhere.img");
    ASSERT_TRUE(eng->start()) << eng->log();  // the rest is served
    auto ps = pools();
    ASSERT_EQ(ps.size(), 2u);
    const v1::Pool& gone = ps[0].name() == "gone" ? ps[0] : ps[1];
    const v1::Pool& here = ps[0].name() == "gone" ? ps[1] : ps[0];
    EXPECT_EQ(here.status(), "online");
    EXPECT_EQ(gone.status().rfind("not loaded: ", 0), 0u) << gone.status();
    EXPECT_NE(gone.status().find("No such file"), std::string::npos) << gone.status();
    // Shares still work while a pool is missing.
    ASSERT_TRUE(share("here", "v", {}, true).ok());
    // Its name and its file stay taken while the engine remembers it.
    v1::CreatePoolRequest cr;
    cr.set_name("gone");
    cr.set_path((dir / "new.img").string());
    cr.set_size(64 << 20);
    v1::Pool np;
    EXPECT_EQ(call(&v1::Engine::Stub::CreatePool, cr, &np).error_code(),
              StatusCode::ALREADY_EXISTS);
    cr.set_name("other");
    cr.set_path((dir / "gone.img").string());
    EXPECT_EQ(call(&v1::Engine::Stub::CreatePool, cr, &np).error_code(),
              StatusCode::ALREADY_EXISTS);
    // Its saved share keeps it until the share is removed, by name.
    v1::DestroyPoolRequest d;
    d.set_name("gone");
    v1::Empty e;
    EXPECT_EQ(call(&v1::Engine::Stub::DestroyPool, d, &e).error_code(),
              StatusCode::FAILED_PRECONDITION);
    v1::UnshareVolumeRequest ur;
    *ur.mutable_volume() = ref("gone", "g");
    ASSERT_TRUE(call(&v1::Engine::Stub::UnshareVolume, ur, &e).ok());
    ASSERT_TRUE(call(&v1::Engine::Stub::DestroyPool, d, &e).ok());
    EXPECT_EQ(pools().size(), 1u);
    // The disk comes back: it still holds the pool, untouched, to import.
    v1::ImportPoolRequest ir;
    ir.set_path((dir / "elsewhere.img").string());
    v1::Pool p;
    ASSERT_TRUE(call(&v1::Engine::Stub::ImportPool, ir, &p).ok());
    EXPECT_EQ(p.name(), "gone");
}

TEST_F(api, a_state_that_cannot_be_saved_changes_nothing) {
    make_pool("p");
    ASSERT_TRUE(make_volume("p", "v", 8 << 20, false).ok());
    // The temporary state file cannot be made: every save fails.
    fs::create_directory(dir / "engine-state.json.tmp");
    auto s = share("p", "v", {}, true);
    EXPECT_EQ(s.error_code(), StatusCode::INTERNAL) << s.error_message();
    EXPECT_TRUE(shares().empty());
    EXPECT_EQ(volumes("p").at(0).share_nqn(), "");
    v1::CreatePoolRequest r;
    r.set_name("q");
    r.set_path((dir / "q.img").string());
    r.set_size(64 << 20);
    v1::Pool p;
    EXPECT_EQ(call(&v1::Engine::Stub::CreatePool, r, &p).error_code(), StatusCode::INTERNAL);
    EXPECT_EQ(pools().size(), 1u);
    EXPECT_FALSE(fs::exists(dir / "q.img"));
    v1::AddListenerRequest lr;
    lr.set_address("127.0.0.1:0");
    v1::Listener l;
    EXPECT_EQ(call(&v1::Engine::Stub::AddListener, lr, &l).error_code(), StatusCode::INTERNAL);
    v1::ListListenersReply all;
    ASSERT_TRUE(call(&v1::Engine::Stub::ListListeners, v1::ListListenersRequest{}, &all).ok());
    EXPECT_EQ(all.listeners_size(), 1);  // the new one was closed again
    fs::remove(dir / "engine-state.json.tmp");
    ASSERT_TRUE(share("p", "v", {}, true).ok());
}

TEST_F(api, concurrent_requests_are_serialised) {
    make_pool("p");
    std::atomic<int> ok{0}, exists{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 8; ++i)
        ts.emplace_back([&] {
            auto s = make_volume("p", "same", 4 << 20, false);
            if (s.ok())
                ++ok;
            else if (s.error_code() == StatusCode::ALREADY_EXISTS)
                ++exists;
        });
    for (auto& t : ts) t.join();
    EXPECT_EQ(ok.load(), 1);
    EXPECT_EQ(exists.load(), 7);
    EXPECT_EQ(volumes().size(), 1u);
}

TEST_F(api, metrics_page) {
    make_pool("p");
    ASSERT_TRUE(make_volume("p", "v", 8 << 20, true).ok());
    ASSERT_TRUE(share("p", "v", {}, true).ok());
    httplib::Client c("127.0.0.1", eng->metrics_port);
    auto res = c.Get("/metrics");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    const std::string& body = res->body;
    EXPECT_NE(body.find("weft_pool_capacity_bytes{pool=\"p\"}"), std::string::npos) << body;
    EXPECT_NE(body.find("weft_pool_used_bytes{pool=\"p\"} 8388608"), std::string::npos) << body;
    EXPECT_NE(body.find("weft_volume_reads_total{nqn=\"nqn.2026-11.io.weft:p:v\",nsid=\"1\",pool="
                        "\"p\",volume=\"v\"} 0"),
              std::string::npos)
        << body;
    EXPECT_NE(body.find("# TYPE weft_volume_read_latency_seconds histogram"), std::string::npos);
    v1::Stats st;
    ASSERT_TRUE(call(&v1::Engine::Stub::GetStats, v1::GetStatsRequest{}, &st).ok());
    ASSERT_EQ(st.volumes_size(), 1);
    EXPECT_EQ(st.volumes(0).volume(), "v");
}

TEST(api_process, refuses_a_state_file_it_cannot_read) {
    char tmpl[] = "/tmp/weft-api-XXXXXX";
    fs::path dir = mkdtemp(tmpl);
    fs::create_directory(dir / "engine-state.json");  // EISDIR on read: not "no state"
    engine_process e(dir);
    EXPECT_FALSE(e.start());
    EXPECT_EQ(e.exit_code, 1);
    EXPECT_NE(e.log().find("engine-state.json"), std::string::npos) << e.log();
    EXPECT_TRUE(fs::is_directory(dir / "engine-state.json"));
    fs::remove_all(dir);
}

TEST(api_process, refuses_a_damaged_state_file) {
    char tmpl[] = "/tmp/weft-api-XXXXXX";
    fs::path dir = mkdtemp(tmpl);
    std::ofstream(dir / "engine-state.json") << "{ not json";
    engine_process e(dir);
    EXPECT_FALSE(e.start());
    EXPECT_EQ(e.exit_code, 1);
    EXPECT_NE(e.log().find("engine-state.json cannot be read"), std::string::npos) << e.log();
    // Not overwritten.
    std::ifstream in(dir / "engine-state.json");
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "{ not json");
    fs::remove_all(dir);
}

}  // namespace
