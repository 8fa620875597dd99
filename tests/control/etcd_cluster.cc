#include "control/etcd_cluster.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "etcd/etcdserverpb/rpc.grpc.pb.h"

namespace weft::control::test {

namespace {

namespace fs = std::filesystem;

// A port nobody listens on now, below Linux's ephemeral range (32768 and
// up): the port-0 listeners and client sockets of tests running meanwhile
// cannot take it before etcd binds it. Another test picking the same one at
// random is rare, and the cluster then starts again on other ports.
int free_port() {
    static std::mt19937 rng(std::random_device{}());
    for (int tries = 0; tries < 100; ++tries) {
        int port = 20000 + int(rng() % 12000);
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) break;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(uint16_t(port));
        bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        if (ok) return port;
    }
    throw std::runtime_error("no free loopback port for etcd");
}

std::string url(int port) {
    return "http://127.0.0.1:" + std::to_string(port);
}

std::string find_etcd() {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "/usr/bin:/bin");
    for (std::string d; std::getline(dirs, d, ':');)
        if (!d.empty() && ::access((d + "/etcd").c_str(), X_OK) == 0) return d + "/etcd";
    for (const char* d : {"/usr/sbin", "/usr/local/bin"})
        if (::access((std::string(d) + "/etcd").c_str(), X_OK) == 0)
            return std::string(d) + "/etcd";
    return "";
}

// A linearizable read answered through member `target`: it has a leader and
// a quorum behind it.
bool answers(const std::string& target) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
    auto ch = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    auto kv = etcdserverpb::KV::NewStub(ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    etcdserverpb::RangeRequest req;
    req.set_key("/weft-test-health");
    etcdserverpb::RangeResponse resp;
    return kv->Range(&ctx, req, &resp).ok();
}

}  // namespace

etcd_cluster::etcd_cluster(std::string etcd_binary)
    : binary_(std::move(etcd_binary)), pid_(members, 0) {
    std::string tmpl = (fs::temp_directory_path() / "weft-etcd-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("cannot make a directory for etcd");
    dir_ = tmpl;
    for (int attempt = 1;; ++attempt) {
        client_port_.clear();
        peer_port_.clear();
        for (int i = 0; i < members; ++i) {
            client_port_.push_back(free_port());
            peer_port_.push_back(free_port());
        }
        try {
            for (int i = 0; i < members; ++i) spawn(i);
            wait_healthy();
            return;
        } catch (const std::exception& e) {
            for (int i = 0; i < members; ++i) kill(i);
            bool taken = std::string(e.what()).find("address already in use") != std::string::npos;
            if (!taken || attempt == 3) {
                fs::remove_all(dir_);
                throw;
            }
            // A port was taken meanwhile: again, from blank members.
            for (auto& entry : fs::directory_iterator(dir_)) fs::remove_all(entry.path());
        }
    }
}

etcd_cluster::~etcd_cluster() {
    for (int i = 0; i < members; ++i) kill(i);
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

std::string etcd_cluster::endpoint(int i) const {
    return url(client_port_[i]);
}

std::string etcd_cluster::endpoints() const {
    std::string s;
    for (int i = 0; i < members; ++i) s += (i ? "," : "") + endpoint(i);
    return s;
}

void etcd_cluster::spawn(int i) {
    std::string name = "m" + std::to_string(i), initial;
    for (int j = 0; j < members; ++j)
        initial += (j ? ",m" : "m") + std::to_string(j) + "=" + url(peer_port_[j]);
    // A restarted member finds its data and ignores the --initial-* flags.
    std::vector<std::string> args = {
        binary_,
        "--name=" + name,
        "--data-dir=" + dir_ + "/" + name,
        "--listen-client-urls=" + endpoint(i),
        "--advertise-client-urls=" + endpoint(i),
        "--listen-peer-urls=" + url(peer_port_[i]),
        "--initial-advertise-peer-urls=" + url(peer_port_[i]),
        "--initial-cluster=" + initial,
        "--initial-cluster-state=new",
        "--initial-cluster-token=weft-test-" + std::to_string(::getpid()),
        "--logger=zap",
        "--log-outputs=stderr",
        "--log-level=error"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string log = dir_ + "/" + name + ".log";
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot open " + log);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
        // Only async-signal-safe calls here (the test process has threads).
        // The member dies with the test binary, even when it crashes.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(1);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    ::close(fd);
    if (pid < 0) throw std::runtime_error("cannot fork etcd");
    pid_[i] = pid;
}

void etcd_cluster::kill(int i) {
    if (pid_[i] <= 0) return;
    ::kill(pid_[i], SIGKILL);
    ::waitpid(pid_[i], nullptr, 0);
    pid_[i] = 0;
}

void etcd_cluster::restart(int i) {
    if (pid_[i] > 0) return;
    spawn(i);
    wait_healthy();
}

std::string etcd_cluster::log_tail(int i) const {
    std::ifstream f(dir_ + "/m" + std::to_string(i) + ".log");
    std::stringstream ss;
    ss << f.rdbuf();
    std::string s = ss.str();
    return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
}

void etcd_cluster::wait_healthy(std::chrono::milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    for (int i = 0; i < members; ++i) {
        while (pid_[i] > 0 && !answers("127.0.0.1:" + std::to_string(client_port_[i]))) {
            int status;
            if (::waitpid(pid_[i], &status, WNOHANG) == pid_[i]) {
                pid_[i] = 0;
                throw std::runtime_error("etcd member m" + std::to_string(i) +
                                         " exited; its log ends with:\n" + log_tail(i));
            }
            if (std::chrono::steady_clock::now() > until)
                throw std::runtime_error("etcd member m" + std::to_string(i) + " at " +
                                         endpoint(i) + " did not answer in time; its log:\n" +
                                         log_tail(i));
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
}

restart_on_exit::~restart_on_exit() {
    for (int i = 0; i < etcd_cluster::members; ++i) {
        try {
            c.restart(i);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "could not restart etcd member " << i << ": " << e.what();
        }
    }
}

namespace {

std::unique_ptr<etcd_cluster> cluster;
std::string cluster_error;

// Stops the shared cluster once every test has run.
class etcd_environment : public ::testing::Environment {
  public:
    void TearDown() override { cluster.reset(); }
};

[[maybe_unused]] auto* const registered = ::testing::AddGlobalTestEnvironment(new etcd_environment);

}  // namespace

etcd_cluster& shared_etcd() {
    if (cluster) return *cluster;
    if (cluster_error.empty()) {
        std::string bin = find_etcd();
        if (bin.empty()) {
            cluster_error =
                "etcd is not installed (no etcd binary in PATH): run scripts/setup.sh, which "
                "installs Debian's etcd-server";
        } else {
            try {
                cluster = std::make_unique<etcd_cluster>(bin);
                return *cluster;
            } catch (const std::exception& e) {
                cluster_error = std::string("the test etcd cluster did not start: ") + e.what();
            }
        }
    }
    throw std::runtime_error(cluster_error);
}

}  // namespace weft::control::test
