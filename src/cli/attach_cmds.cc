// weft attach / weft detach: userspace attach. A namespace reached with
// weft's own NVMe/TCP host becomes a block device on a machine whose kernel
// has no nvme-tcp: a daemon serves it as a file through FUSE
// (attach/fuse_disk.h) and binds a loop device to that file
// (attach/loop_device.h).
//
// Each attachment keeps RUN_DIR/<name>/ (name: the NQN and nsid made
// file-safe, and a hash of both): state.json (pid, device, target), log (the daemon's), mnt/
// (the FUSE mount). The daemon detaches on SIGTERM only when nothing holds
// the device (a mounted file system keeps it attached), and on SIGHUP reads
// the namespace's size again and resizes the device.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "attach/fuse_disk.h"
#include "attach/json_file.h"
#include "attach/loop_device.h"
#include "cli/commands.h"
#include "cli/connection.h"
#include "cli/control_client.h"
#include "initiator/nvmf_bdev.h"
#include "pool/uuid.h"
#include "runtime/foreign_call.h"
#include "runtime/signals.h"

namespace weft::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct attach_options {
    connection_options c;
    std::string target;  // a volume ID, or NQN@ADDR[:PORT]; else -a and -n
    std::string node;    // a volume's: publish it through this node
    control_options control;
    std::string volume;  // attached by volume ID: published by this attach
    std::string run_dir = "/run/weft/attach";
    bool foreground = false;
    bool buffered = false;
    double ctrl_loss_s = 30;
};

// Unpublishes a volume this machine's attach published; a sentence naming
// the command that finishes the job when it cannot.
int unpublish_volume(const control_options& co, const std::string& vol, const std::string& why) {
    if (control_client(co).request("DELETE", "/v1/volumes/" + vol + "/publish")) return 0;
    fail(fmt::format("{}, but volume {} is still published: weft volume unpublish {}", why, vol,
                     vol));
    return exit_failed;
}

// TARGET into -a/-s/-n: NQN@ADDR[:PORT] ([v6] in brackets), or a volume
// published to this host through weft-control (which answers where).
int resolve_target(attach_options& o) {
    if (o.target.empty()) {
        if (o.c.addr.empty() || o.c.nqn.empty()) {
            fail("attach what? give a volume ID, NQN@ADDR[:PORT], or -a ADDR -n NQN");
            return exit_usage;
        }
        return 0;
    }
    if (!o.c.addr.empty() || !o.c.nqn.empty()) {
        fail("give " + o.target + " or -a/-n, not both");
        return exit_usage;
    }
    if (pool::parse_uuid(o.target)) {
        control_client cc(o.control);
        auto v = cc.request("GET", "/v1/volumes/" + o.target);
        if (!v) return exit_failed;
        // Published to this host already (by whoever): used as it is, and
        // left published by detach; else published here, and undone by detach.
        json pub = v->value("published", json());
        bool ours_before = pub.is_object() && pub.value("host_nqn", "") == hostnqn_of(o.c) &&
                           !pub.value("nqn", "").empty();
        if (!ours_before) {
            json body = {{"host_nqn", hostnqn_of(o.c)}};
            if (!o.node.empty()) body["node"] = o.node;
            auto p = cc.request("PUT", "/v1/volumes/" + o.target + "/publish", &body);
            if (!p) return exit_failed;
            pub = *p;
            o.volume = o.target;
        }
        o.c.nqn = pub.value("nqn", "");
        o.c.addr = pub.value("address", "");
        o.c.port = uint16_t(pub.value("port", 0));
        return 0;
    }
    size_t at = o.target.rfind('@');
    if (at == std::string::npos || at == 0 || at + 1 == o.target.size()) {
        fail(o.target + " is neither a volume ID nor NQN@ADDR[:PORT]");
        return exit_usage;
    }
    o.c.nqn = o.target.substr(0, at);
    std::string where = o.target.substr(at + 1), port;
    if (where.starts_with("[")) {  // [v6]:port
        size_t close = where.find(']');
        if (close == std::string::npos) {
            fail("no ']' in " + where);
            return exit_usage;
        }
        o.c.addr = where.substr(1, close - 1);
        if (close + 1 < where.size() && where[close + 1] == ':') port = where.substr(close + 2);
    } else if (size_t colon = where.find(':');
               colon != std::string::npos && where.find(':', colon + 1) == std::string::npos) {
        o.c.addr = where.substr(0, colon);
        port = where.substr(colon + 1);
    } else {
        o.c.addr = where;  // a bare address (v6 without a port too)
    }
    if (!port.empty()) {
        unsigned v = 0;
        auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
        if (ec != std::errc() || end != port.data() + port.size() || v == 0 || v > 65535) {
            fail("\"" + port + "\" is not a TCP port");
            return exit_usage;
        }
        o.c.port = uint16_t(v);
    }
    return 0;
}

// The NQN made file-safe, the nsid, and a hash of both (FNV-1a: stable
// across builds), so that NQNs that differ only in the characters replaced
// do not share a directory.
std::string name_of(const connection_options& c) {
    std::string key = c.nqn + "/" + std::to_string(c.nsid);
    uint32_t h = 2166136261u;
    for (unsigned char ch : key) h = (h ^ ch) * 16777619u;
    std::string n = c.nqn + "-" + std::to_string(c.nsid);
    for (char& ch : n)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '-' && ch != '_')
            ch = '_';
    return fmt::format("{}-{:08x}", n, h);
}

// Running, and not a zombie (a daemon whose parent does not reap it, e.g.
// under a container's PID 1, stays one after it exits).
bool alive(pid_t pid) {
    if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(f, line);
    size_t paren = line.rfind(')');
    return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

std::optional<json> read_state(const fs::path& dir) {
    return attach::read_json_file((dir / "state.json").string());
}
void write_state(const fs::path& dir, const json& j) {
    if (!attach::write_json_file((dir / "state.json").string(), j))
        spdlog::warn("cannot write {}/state.json", dir.string());
}

// Every attachment under run_dir whose daemon is alive (or every one).
std::vector<json> attachments(const std::string& run_dir, bool dead_too = false) {
    std::vector<json> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(run_dir, ec)) {
        auto s = read_state(e.path());
        if (s && (dead_too || alive(s->value("pid", 0)))) {
            (*s)["dir"] = e.path().string();
            out.push_back(*s);
        }
    }
    return out;
}

// What a daemon that died left: its FUSE mount (lazily unmounted), its loop
// device (if nothing holds it), its directory.
void clean_stale(const fs::path& dir) {
    auto s = read_state(dir);
    if (s && alive(s->value("pid", 0))) return;
    if (s) {
        std::string dev = s->value("device", std::string());
        if (!dev.empty() && attach::loop_backing_file(dev) == (dir / "mnt" / "disk").string())
            (void)attach::loop_detach(dev);
    }
    ::umount2((dir / "mnt").c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove_all(dir, ec);
}

// The daemon: connects, serves the namespace through FUSE, binds the loop
// device, reports "ok DEVICE" (or nothing: its stderr said why) on
// `report`, then serves until SIGTERM.
task<int> serve_attachment(const attach_options& o, fs::path dir, int& report) {
    initiator::controller_options opt;
    std::string why;
    if (!make_controller_options(o.c, opt, &why)) {
        fail(why);
        co_return exit_failed;
    }
    opt.io_queues = 1;
    opt.queue_depth = 128;
    // A target that goes away for less than --ctrl-loss-tmo: I/O waits.
    opt.reconnect_delay = std::chrono::milliseconds(200);
    opt.reconnect_attempts = unsigned(std::max(1.0, o.ctrl_loss_s / 0.2));
    auto ctrl = co_await connect(o.c, opt);
    if (!ctrl) co_return exit_connect;
    auto ids = ctrl->namespace_ids();
    if (std::find(ids.begin(), ids.end(), o.c.nsid) == ids.end()) {
        fail(fmt::format("namespace {} is not active on {}", o.c.nsid, o.c.nqn));
        co_await ctrl->disconnect();
        co_return exit_failed;
    }
    auto dev = initiator::make_nvmf_bdev("attach", *ctrl, o.c.nsid);
    fs::create_directories(dir / "mnt");
    auto disk = attach::fuse_disk::mount(*dev, {.mountpoint = (dir / "mnt").string()});
    if (!disk) {
        fail(fmt::format("cannot mount the FUSE file system at {}: {}", (dir / "mnt").string(),
                         std::strerror(disk.err().code)));
        co_await ctrl->disconnect();
        co_return exit_failed;
    }
    auto& d = *disk.value();
    reactor::local().spawn(d.serve());
    result<std::string> loop = error{EIO};
    attach::loop_options lo{
        .block_size = dev->block_size(), .direct_io = !o.buffered, .read_only = dev->read_only()};
    co_await in_thread([&] { loop = attach::loop_attach(d.file_path(), lo); });
    if (!loop) {
        fail(fmt::format("cannot bind a loop device to {}: {}", d.file_path(),
                         std::strerror(loop.err().code)));
        co_await d.unmount();
        co_await ctrl->disconnect();
        co_return exit_failed;
    }
    json state = {{"pid", ::getpid()},
                  {"device", loop.value()},
                  {"nqn", o.c.nqn},
                  {"address", o.c.addr},
                  {"port", o.c.port},
                  {"nsid", o.c.nsid},
                  {"hostnqn", hostnqn_of(o.c)},
                  {"size_bytes", dev->size_bytes()},
                  {"block_size", dev->block_size()}};
    if (!o.volume.empty()) {
        // Published by this attach: detach unpublishes it.
        state["volume"] = o.volume;
        state["control"] = o.control.url;
    }
    write_state(dir, state);
    std::string ok = "ok " + loop.value() + "\n";
    if (::write(report, ok.data(), ok.size()) < 0) {
    }
    ::close(report);
    report = -1;
    spdlog::set_level(spdlog::level::info);  // from here on, to the log
    spdlog::info("attached {} ({} bytes) as {}", o.c.nqn, dev->size_bytes(), loop.value());

    sigset_t sigs = signal_set({SIGTERM, SIGINT, SIGHUP});
    for (;;) {
        int sig = co_await wait_for_signal(sigs);
        if (sig == SIGHUP) {
            // Each rescan is counted in the state, with its error if any:
            // `weft rescan` waits for the count to move.
            auto n = co_await initiator::rescan(*dev);
            std::string why;
            if (!n) {
                why = std::string("reading the namespace's size: ") + std::strerror(n.err().code);
            } else {
                result<void> cap;
                co_await in_thread([&] { cap = attach::loop_set_capacity(loop.value()); });
                if (!cap)
                    why = std::string("resizing the device: ") + std::strerror(cap.err().code);
            }
            state["size_bytes"] = dev->size_bytes();
            state["rescans"] = state.value("rescans", 0) + 1;
            state["rescan_error"] = why;
            write_state(dir, state);
            if (why.empty())
                spdlog::info("{} is now {} bytes", loop.value(), dev->size_bytes());
            else
                spdlog::warn("rescan of {}: {}", loop.value(), why);
            continue;
        }
        result<void> off;
        co_await in_thread([&] { off = attach::loop_detach(loop.value()); });
        if (off) break;
        // A mounted file system keeps its device: pulling it away would lose
        // what it has not written yet.
        spdlog::warn("signal {}: {} is in use ({}): staying attached", sig, loop.value(),
                     std::strerror(off.err().code));
    }
    co_await d.unmount();
    co_await ctrl->disconnect();
    std::error_code ec;
    fs::remove_all(dir, ec);
    spdlog::info("detached {}", o.c.nqn);
    co_return 0;
}

int run_attach(const attach_options& o) {
    if (::geteuid() != 0) {
        fail("attach needs root (a FUSE mount and a loop device)");
        return exit_failed;
    }
    fs::path dir = fs::path(o.run_dir) / name_of(o.c);
    clean_stale(dir);
    if (auto s = read_state(dir)) {
        std::printf("%s\n", s->value("device", std::string()).c_str());  // already attached
        return 0;
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        fail(fmt::format("cannot make {}: {}", dir.string(), ec.message()));
        return exit_failed;
    }
    // Runs the daemon's body; `report` gets "ok DEVICE" once attached, and
    // is closed whatever happens (a reader then sees the end).
    // Signals are blocked before any thread starts (every thread inherits the
    // mask; the runtime takes them through a signalfd).
    sigset_t sigs = signal_set({SIGTERM, SIGINT, SIGHUP});
    auto serve = [&](int report) {
        // The daemon's log is its stderr (its log file once it reports).
        spdlog::set_default_logger(spdlog::stderr_logger_mt("attach"));
        spdlog::set_level(spdlog::level::warn);
        int rc = run_on_reactors({-1}, [&]() { return serve_attachment(o, dir, report); });
        if (report >= 0) ::close(report);
        return rc;
    };
    if (o.foreground) {
        int report[2];
        if (::pipe2(report, O_CLOEXEC) != 0) return exit_failed;
        block_signals(sigs);
        std::thread print([r = report[0]] {
            std::string got;
            char buf[512];
            for (ssize_t n; (n = ::read(r, buf, sizeof buf)) > 0;) got.append(buf, size_t(n));
            ::close(r);
            if (got.rfind("ok ", 0) == 0) {
                std::printf("%s", got.substr(3).c_str());
                std::fflush(stdout);
            }
        });
        int rc = serve(report[1]);
        print.join();
        return rc;
    }
    // The daemon's report and, until then, its stderr, to this process.
    int status[2], errs[2];
    if (::pipe2(status, O_CLOEXEC) != 0 || ::pipe2(errs, O_CLOEXEC) != 0) {
        fail(std::string("pipe: ") + std::strerror(errno));
        return exit_failed;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        fail(std::string("fork: ") + std::strerror(errno));
        return exit_failed;
    }
    if (pid == 0) {
        // The daemon: its own session; until it reports, its stderr goes to
        // the caller (the sentence of a failure), then to its log.
        ::setsid();
        block_signals(sigs);
        ::close(status[0]);
        ::close(errs[0]);
        int null = ::open("/dev/null", O_RDWR);
        ::dup2(null, 0);
        ::dup2(null, 1);
        ::dup2(errs[1], 2);
        ::close(errs[1]);
        std::string log = (dir / "log").string();
        int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        // Without a log, /dev/null: the caller's pipe must close either way.
        int sink_fd = logfd >= 0 ? logfd : null;
        int rc = [&] {
            int report[2];
            if (::pipe2(report, O_CLOEXEC) != 0) return exit_failed;
            // Relays the report and then points stderr at the log.
            std::thread waiter([&, r = report[0]] {
                char buf[512];
                ssize_t n = ::read(r, buf, sizeof buf);
                ::close(r);
                if (n > 0) {
                    ::dup2(sink_fd, 2);
                    if (::write(status[1], buf, size_t(n)) < 0) {
                    }
                }
                ::close(status[1]);
            });
            int rc = serve(report[1]);
            waiter.join();
            return rc;
        }();
        std::_Exit(rc);
    }
    ::close(status[1]);
    ::close(errs[1]);
    // The daemon's sentences until it reports (or dies).
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(errs[0], buf, sizeof buf);
        if (n <= 0) break;
        if (::write(2, buf, size_t(n)) < 0) break;
    }
    ::close(errs[0]);
    std::string got;
    for (;;) {
        ssize_t n = ::read(status[0], buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, size_t(n));
    }
    ::close(status[0]);
    if (got.rfind("ok ", 0) == 0) {
        std::printf("%s", got.substr(3).c_str());
        return 0;
    }
    int ws = 0;
    ::waitpid(pid, &ws, 0);
    fs::remove_all(dir, ec);
    return WIFEXITED(ws) && WEXITSTATUS(ws) ? WEXITSTATUS(ws) : exit_failed;
}

// The attachment TARGET names: a device (/dev/loopN), or an NQN.
std::optional<json> find_attachment(const std::string& run_dir, const std::string& target,
                                    bool dead_too = false) {
    for (auto& a : attachments(run_dir, dead_too))
        if (a.value("device", "") == target || a.value("nqn", "") == target ||
            a.value("volume", "") == target)
            return a;
    return std::nullopt;
}

int run_detach(const std::string& run_dir, const std::string& target, double timeout_s) {
    auto a = find_attachment(run_dir, target, /*dead_too=*/true);
    if (!a) {
        fail(target + " is not attached (weft attached shows what is)");
        return exit_failed;
    }
    fs::path dir = a->value("dir", std::string());
    std::string dev = a->value("device", std::string());
    pid_t pid = a->value("pid", 0);
    // A volume this machine's attach published: unpublished once detached.
    auto unpublish = [&] {
        std::string vol = a->value("volume", std::string());
        if (vol.empty()) return 0;
        control_options co;
        co.url = a->value("control", std::string(default_control_url));
        control_client cc(co);
        // Only while it is still this host's publication.
        auto v = cc.request("GET", "/v1/volumes/" + vol);
        if (v && (!v->value("published", json()).is_object() ||
                  (*v)["published"].value("host_nqn", "") != a->value("hostnqn", "")))
            return 0;
        return unpublish_volume(co, vol, dev + " is detached");
    };
    if (!alive(pid)) {
        clean_stale(dir);  // its daemon died: what it left goes
        return unpublish();
    }
    // The device first, here, so that a refusal reaches the caller: the
    // kernel refuses while anything has it open (a mounted file system, an
    // application).
    if (auto r = attach::loop_detach(dev); !r) {
        fail(fmt::format("{} is in use ({}): unmount or close it first", dev,
                         std::strerror(r.err().code)));
        return exit_failed;
    }
    ::kill(pid, SIGTERM);
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (alive(pid) && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (alive(pid)) {
        fail(fmt::format("the daemon of {} (pid {}) has not stopped after {} s; see {}/log", dev,
                         pid, timeout_s, dir.string()));
        return exit_failed;
    }
    return unpublish();
}

int run_rescan(const std::string& run_dir, const std::string& target, double timeout_s) {
    auto a = find_attachment(run_dir, target);
    if (!a) {
        fail(target + " is not attached (weft attached shows what is)");
        return exit_failed;
    }
    fs::path dir = a->value("dir", std::string());
    int before = a->value("rescans", 0);
    ::kill(a->value("pid", 0), SIGHUP);
    // The daemon counts each rescan in its state, with its error if any.
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < until) {
        auto s = read_state(dir);
        if (s && s->value("rescans", 0) > before) {
            std::string why = s->value("rescan_error", std::string());
            if (!why.empty()) {
                fail(fmt::format("rescan of {}: {}", s->value("device", std::string()), why));
                return exit_failed;
            }
            std::printf("%s %llu\n", s->value("device", std::string()).c_str(),
                        (unsigned long long)s->value("size_bytes", uint64_t(0)));
            return 0;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    fail(fmt::format("the daemon of {} did not answer within {} s; see {}/log",
                     a->value("device", std::string()), timeout_s, dir.string()));
    return exit_failed;
}

int run_list(const std::string& run_dir) {
    auto all = attachments(run_dir);
    std::printf("%-12s %-10s %-8s %s\n", "DEVICE", "SIZE", "PID", "TARGET");
    for (auto& a : all)
        std::printf("%-12s %-10s %-8d %s@%s:%d/%u\n", a.value("device", "").c_str(),
                    fmt::format("{}M", a.value("size_bytes", uint64_t(0)) >> 20).c_str(),
                    a.value("pid", 0), a.value("nqn", "").c_str(), a.value("address", "").c_str(),
                    a.value("port", 0), a.value("nsid", 1u));
    return 0;
}

}  // namespace

void add_attach_commands(CLI::App& app, action_fn& action) {
    auto o = std::make_shared<attach_options>();
    auto* at = app.add_subcommand(
        "attach",
        "make a namespace a block device on this machine without the kernel's NVMe/TCP host: "
        "weft's host serves it through FUSE and a loop device binds to it (root). Prints the "
        "device (/dev/loopN); a daemon keeps it attached until `weft detach`. TARGET is a "
        "volume ID (published to this host through weft-control first; detach unpublishes "
        "it) or NQN@ADDR[:PORT]; or give -a and -n");
    at->add_option("TARGET", o->target, "a volume ID, or NQN@ADDR[:PORT] ([v6]:PORT)");
    add_connection_options(at, o->c, /*need_nqn=*/false, /*with_nsid=*/true, /*need_addr=*/false);
    at->add_option("--node", o->node,
                   "a volume's: publish it through this node (its nexus there when it holds a "
                   "replica)");
    at->add_option("--control", o->control.url,
                   "a volume's: weft-control's REST API (several, comma-separated)")
        ->envname("WEFT_CONTROL")
        ->capture_default_str();
    at->add_option("--run-dir", o->run_dir, "where attachments keep their state and mounts")
        ->capture_default_str();
    at->add_option("--ctrl-loss-tmo", o->ctrl_loss_s,
                   "seconds I/O waits for a lost connection to come back before it fails")
        ->capture_default_str()
        ->check(CLI::Range(1.0, 3600.0));
    at->add_flag("--buffered", o->buffered,
                 "bind the loop device without direct I/O (a second page cache)");
    at->add_flag("--foreground", o->foreground, "serve in this process instead of a daemon");
    at->callback([o, &action] {
        action = [o] {
            attach_options a = *o;
            if (int rc = resolve_target(a)) return rc;
            int rc = run_attach(a);
            // Published for this attach, which failed: nothing stays.
            if (rc != 0 && !a.volume.empty())
                unpublish_volume(a.control, a.volume, "the attach failed");
            return rc;
        };
    });

    auto list = std::make_shared<std::string>("/run/weft/attach");
    auto* ls = app.add_subcommand("attached", "list the namespaces attached with `weft attach`");
    ls->add_option("--run-dir", *list, "where attachments keep their state")->capture_default_str();
    ls->callback([list, &action] { action = [list] { return run_list(*list); }; });

    struct detach_options {
        std::string target;
        std::string run_dir = "/run/weft/attach";
        double timeout_s = 30;
        bool rescan = false;
    };
    auto d = std::make_shared<detach_options>();
    auto* de = app.add_subcommand(
        "detach",
        "undo `weft attach`: the loop device goes, then the daemon (refused while "
        "the device is mounted or open)");
    de->add_option("TARGET", d->target,
                   "the device (/dev/loopN), the subsystem NQN, or the volume ID it was attached "
                   "by")
        ->required();
    de->add_option("--run-dir", d->run_dir, "where attachments keep their state")
        ->capture_default_str();
    de->add_option("--timeout", d->timeout_s, "seconds to wait for the daemon to stop")
        ->capture_default_str();
    de->callback(
        [d, &action] { action = [d] { return run_detach(d->run_dir, d->target, d->timeout_s); }; });

    auto r = std::make_shared<detach_options>();
    auto* rs = app.add_subcommand(
        "rescan",
        "read an attached namespace's size again (after the volume grew) and resize "
        "its device; prints the device and its size in bytes");
    rs->add_option("TARGET", r->target, "the device (/dev/loopN) or the subsystem NQN")->required();
    rs->add_option("--run-dir", r->run_dir, "where attachments keep their state")
        ->capture_default_str();
    rs->add_option("--timeout", r->timeout_s, "seconds to wait for the new size")
        ->capture_default_str();
    rs->callback(
        [r, &action] { action = [r] { return run_rescan(r->run_dir, r->target, r->timeout_s); }; });
}

}  // namespace weft::cli
