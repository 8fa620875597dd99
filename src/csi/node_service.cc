#include "csi/node_service.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "attach/json_file.h"
#include "attach/loop_device.h"
#include "csi/capabilities.h"
#include "csi/kernel_nvme.h"
#include "csi/parameters.h"
#include "csi/run_command.h"

namespace weft::csi {

namespace v1 = ::csi::v1;
namespace fs = std::filesystem;
using grpc::Status;
using grpc::StatusCode;
using json = nlohmann::json;

namespace {

Status bad(const std::string& why) {
    return {StatusCode::INVALID_ARGUMENT, why};
}
Status busy(const std::string& id) {
    return {StatusCode::ABORTED, "an operation on volume " + id + " is in flight: try again"};
}
Status internal(const std::string& why) {
    return {StatusCode::INTERNAL, why};
}

using attach::read_json_file;
using attach::write_json_file;

// A volume ID is a file name in the state directory: nothing else.
bool safe_id(const std::string& id) {
    if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
    for (char c : id)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
            return false;
    return true;
}

uint64_t device_bytes(const std::string& dev) {
    int fd = ::open(dev.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    uint64_t n = 0;
    if (::ioctl(fd, BLKGETSIZE64, &n) != 0) n = 0;
    ::close(fd);
    return n;
}

Status unmount(const std::string& path) {
    if (!is_mount_point(path)) return Status::OK;
    if (::umount2(path.c_str(), 0) != 0)
        return internal(fmt::format("umount {}: {}", path, std::strerror(errno)));
    return Status::OK;
}

bool via_kernel(const json& st) {
    return st.value("via", std::string()) == "kernel";
}

// The state's device, when it is still the attachment the state recorded
// (loop and nvme numbers are reused: after a reboot /dev/loop0 may be
// another volume's); "" otherwise.
std::string device_of(const json& st) {
    std::string dev = st.value("device", std::string());
    if (dev.empty()) return {};
    if (via_kernel(st))
        return kernel_nvme::namespace_device(st.value("nqn", ""), st.value("nsid", 1u)) == dev ? dev
                                                                                               : "";
    std::string backing = st.value("backing", std::string());
    if (backing.empty() || attach::loop_backing_file(dev) != backing) return {};
    return dev;
}

// What still holds block device `dev`: a mount of it, or an exclusive
// opener (a file system, another claim); "" when nothing.
std::string holder_of(const std::string& dev) {
    if (std::string at = mount_point_of_device(dev); !at.empty()) return "mounted at " + at;
    int fd = ::open(dev.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
    if (fd < 0) return errno == EBUSY ? "held open by something else" : "";
    ::close(fd);
    return {};
}

// publish_context's values go into the kernel's fabrics options and into
// argv: IP literals, ports, NQNs of NQN characters only.
std::string context_problem(const google::protobuf::Map<std::string, std::string>& pc) {
    auto ip = [](const std::string& a) {
        unsigned char buf[16];
        return ::inet_pton(AF_INET, a.c_str(), buf) == 1 ||
               ::inet_pton(AF_INET6, a.c_str(), buf) == 1;
    };
    auto port = [](const std::string& p) { return parse_unsigned(p, 1, 65535).has_value(); };
    auto nqn = [](const std::string& n) {
        if (n.size() < 5 || n.size() > 223 || !n.starts_with("nqn.")) return false;
        for (char c : n)
            if (!std::isgraph(static_cast<unsigned char>(c)) || c == ',' || c == '=') return false;
        return true;
    };
    auto value = [&](const char* k) { return pc.count(k) ? pc.at(k) : std::string(); };
    bool standby = !value("standbyAddress").empty();
    if (!ip(value("address")) || (standby && !ip(value("standbyAddress"))))
        return fmt::format(
            "publish_context's address (\"{}\", standby \"{}\") is not an IP address",
            value("address"), value("standbyAddress"));
    if (!port(value("port")) || (standby && !port(value("standbyPort"))))
        return fmt::format("publish_context's port (\"{}\", standby \"{}\") is not a TCP port",
                           value("port"), value("standbyPort"));
    for (const char* k : {"nqn", "hostNqn"})
        if (!nqn(value(k)))
            return fmt::format("publish_context's {} \"{}\" is not an NQN", k, value(k));
    return {};
}

// The StorageClass's ioTimeout (volume_context): 1 to 3600 seconds, 0 when
// not given, nullopt when malformed.
std::optional<unsigned> io_timeout_of(const google::protobuf::Map<std::string, std::string>& vc) {
    auto it = vc.find("ioTimeout");
    if (it == vc.end()) return 0u;
    return parse_unsigned(it->second, 1, 3600);
}

// Whether the kernel puts every path of a subsystem under one device.
bool native_multipath() {
    std::ifstream f("/sys/module/nvme_core/parameters/multipath");
    std::string v;
    return !(f >> v) || v != "N";
}

// publish_context's "nsid" (weft's volumes are namespace 1).
std::optional<uint32_t> nsid_of(const google::protobuf::Map<std::string, std::string>& pc) {
    auto it = pc.find("nsid");
    if (it == pc.end()) return 1u;
    return parse_unsigned(it->second, 1, 0xfffffffe);
}

}  // namespace

std::string node_service::state_path(const std::string& volume_id) const {
    return o_.state_dir + "/" + volume_id + ".json";
}

Status node_service::NodeStageVolume(ctx*, const v1::NodeStageVolumeRequest* req,
                                     v1::NodeStageVolumeResponse*) {
    const std::string& id = req->volume_id();
    const std::string& staging = req->staging_target_path();
    if (id.empty()) return bad("NodeStageVolume needs a volume_id");
    if (!safe_id(id)) return {StatusCode::NOT_FOUND, "no volume " + id};
    if (staging.empty()) return bad("NodeStageVolume needs a staging_target_path");
    if (!req->has_volume_capability()) return bad("NodeStageVolume needs a volume capability");
    if (auto why = capability_problem(req->volume_capability()); !why.empty()) return bad(why);
    const auto& pc = req->publish_context();
    for (const char* k : {"nqn", "address", "port", "hostNqn"})
        if (!pc.count(k))
            return bad(
                fmt::format("publish_context has no \"{}\": publish the volume with "
                            "weft-csi's controller first",
                            k));
    auto nsid = nsid_of(pc);
    if (!nsid) return bad("publish_context's nsid is \"" + pc.at("nsid") + "\": want 1 or more");
    if (auto why = context_problem(pc); !why.empty()) return bad(why);
    auto io_timeout = io_timeout_of(req->volume_context());
    if (!io_timeout)
        return bad("volume_context's ioTimeout is \"" + req->volume_context().at("ioTimeout") +
                   "\": want 1 to 3600 seconds");
    inflight_guard g(busy_, id);
    if (!g) return busy(id);
    bool block = req->volume_capability().has_block();

    // Staged already (a retry): the same device, still there.
    auto st = read_json_file(state_path(id));
    if (st && st->value("staging", "") == staging && st->value("nqn", "") == pc.at("nqn") &&
        !device_of(*st).empty()) {
        if (st->value("block", false) != block)
            return {StatusCode::ALREADY_EXISTS,
                    fmt::format("volume {} is staged at {} as {}", id, staging,
                                block ? "a mount" : "a block device")};
        if (block || is_mount_point(staging)) return Status::OK;
    }

    std::error_code ec;
    fs::create_directories(o_.state_dir, ec);
    // The StorageClass's attach parameter, else the plugin's --attach.
    auto asked = req->volume_context().find("attach");
    bool by_class = asked != req->volume_context().end();
    const std::string& how = by_class ? asked->second : o_.attach;
    if (how != "kernel" && how != "user" && how != "auto")
        return bad("volume_context's attach is \"" + how + "\": want kernel, user or auto");
    bool kernel = how != "user" && kernel_nvme::available();
    if (how == "kernel" && !kernel)
        return {StatusCode::FAILED_PRECONDITION,
                fmt::format("this node's kernel has no NVMe/TCP host (module nvme-tcp), and {} "
                            "asks for kernel attach",
                            by_class ? "the volume's StorageClass (attach: kernel)"
                                     : "weft-csi's --attach kernel")};
    const std::string& nqn = pc.at("nqn");
    std::string dev;
    if (kernel) {
        kernel_nvme::connect_options co{nqn,
                                        pc.at("hostNqn"),
                                        {{pc.at("address"), pc.at("port")}},
                                        o_.ctrl_loss_tmo_s,
                                        o_.reconnect_delay_s,
                                        o_.keep_alive_tmo_s};
        // Without native multipath a second path is a second device that
        // nothing would follow: the nexus's path only.
        auto sa = pc.find("standbyAddress"), sp = pc.find("standbyPort");
        if (sa != pc.end() && sp != pc.end() && !sa->second.empty()) {
            if (native_multipath())
                co.paths.push_back({sa->second, sp->second});
            else
                spdlog::warn(
                    "NodeStageVolume {}: the kernel runs without native multipath "
                    "(nvme_core.multipath=N): the standby path is not connected",
                    id);
        }
        if (auto why = kernel_nvme::connect(co); !why.empty())
            return internal("connecting " + nqn + ": " + why);
        dev = kernel_nvme::wait_namespace(nqn, *nsid, std::chrono::seconds(15));
        if (dev.empty()) {
            kernel_nvme::disconnect(nqn);
            return internal(
                fmt::format("{} is connected, but its namespace {} did not appear "
                            "within 15 s",
                            nqn, *nsid));
        }
        if (*io_timeout)
            if (auto why = kernel_nvme::set_io_timeout(nqn, *nsid, *io_timeout); !why.empty())
                spdlog::warn("NodeStageVolume {}: ioTimeout {} s: {}", id, *io_timeout, why);
    } else {
        std::vector<std::string> attach = {o_.weft,     "attach",
                                           "-a",        pc.at("address"),
                                           "-s",        pc.at("port"),
                                           "-n",        nqn,
                                           "--nsid",    std::to_string(*nsid),
                                           "--hostnqn", pc.at("hostNqn"),
                                           "--run-dir", o_.attach_run_dir};
        if (*io_timeout) attach.insert(attach.end(), {"--timeout", std::to_string(*io_timeout)});
        auto a = run_command(attach);
        if (a.rc != 0) return internal(fmt::format("attaching {}: {}", nqn, a.why()));
        dev = a.out.substr(0, a.out.find('\n'));
    }
    json state = {{"volume", id},  {"device", dev}, {"via", kernel ? "kernel" : "user"},
                  {"nqn", nqn},    {"nsid", *nsid}, {"staging", staging},
                  {"block", block}};
    if (*io_timeout) state["io_timeout"] = *io_timeout;
    if (!kernel) state["backing"] = attach::loop_backing_file(dev);
    // Recorded before anything else can fail, and undone when something
    // does (the CO does not unstage a stage that failed).
    auto undo = [&](Status s) {
        if (kernel)
            kernel_nvme::disconnect(nqn);
        else
            run_command({o_.weft, "detach", dev, "--run-dir", o_.attach_run_dir});
        fs::remove(state_path(id), ec);
        return s;
    };
    if (!write_json_file(state_path(id), state))
        return undo(internal("cannot write the state of " + id + " in " + o_.state_dir));

    if (!block) {
        const auto& m = req->volume_capability().mount();
        std::string want = m.fs_type();
        if (want.empty() && req->volume_context().count("fsType"))
            want = req->volume_context().at("fsType");
        if (want.empty()) want = "ext4";
        // A device that holds a file system keeps it (its data); only a
        // blank one is made one.
        auto probe = run_command({"blkid", "-p", "-o", "value", "-s", "TYPE", dev});
        std::string has = probe.rc == 0 ? probe.out.substr(0, probe.out.find('\n')) : "";
        if (probe.rc != 0 && probe.rc != 2)  // 2: nothing found
            return undo(internal(fmt::format("probing {}: {}", dev, probe.why())));
        if (has.empty()) {
            // No force flag: mkfs itself refuses a device that holds a file
            // system, should blkid ever miss one.
            auto mk = want == "xfs" ? run_command({"mkfs.xfs", "-q", dev})
                                    : run_command({"mkfs.ext4", "-q", dev});
            if (mk.rc != 0)
                return undo(internal(fmt::format("mkfs.{} {}: {}", want, dev, mk.why())));
            has = want;
            spdlog::info("NodeStageVolume {}: made {} on {}", id, want, dev);
        }
        fs::create_directories(staging, ec);
        if (!is_mount_point(staging)) {
            std::vector<std::string> argv = {"mount", "-t", has};
            std::string opts;
            for (auto& f : m.mount_flags()) opts += (opts.empty() ? "" : ",") + f;
            // A clone's xfs has its source's UUID: both may be on one node.
            if (has == "xfs") opts += std::string(opts.empty() ? "" : ",") + "nouuid";
            if (!opts.empty()) argv.insert(argv.end(), {"-o", opts});
            argv.insert(argv.end(), {dev, staging});
            auto mt = run_command(argv);
            if (mt.rc != 0)
                return undo(internal(fmt::format("mount {} on {}: {}", dev, staging, mt.why())));
        }
        state["fs"] = has;
    }
    if (!write_json_file(state_path(id), state)) {
        ::umount2(staging.c_str(), 0);
        return undo(internal("cannot write the state of " + id + " in " + o_.state_dir));
    }
    spdlog::info("NodeStageVolume {}: {} staged at {}", id, dev, staging);
    return Status::OK;
}

Status node_service::NodeUnstageVolume(ctx*, const v1::NodeUnstageVolumeRequest* req,
                                       v1::NodeUnstageVolumeResponse*) {
    const std::string& id = req->volume_id();
    if (id.empty()) return bad("NodeUnstageVolume needs a volume_id");
    if (req->staging_target_path().empty())
        return bad("NodeUnstageVolume needs a staging_target_path");
    if (!safe_id(id)) return Status::OK;
    inflight_guard g(busy_, id);
    if (!g) return busy(id);
    if (Status s = unmount(req->staging_target_path()); !s.ok()) return s;
    auto st = read_json_file(state_path(id));
    if (st) {
        std::string nqn = st->value("nqn", std::string());
        std::string dev = st->value("device", std::string());
        if (via_kernel(*st)) {
            // The last user is gone: nothing may still hold the device.
            std::string live = device_of(*st);
            std::string held = live.empty() ? "" : holder_of(live);
            if (!held.empty())
                return {StatusCode::FAILED_PRECONDITION,
                        fmt::format("{} of volume {} is still {}", live, id, held)};
            if (auto why = kernel_nvme::disconnect(nqn); !why.empty()) return internal(why);
        } else {
            // By NQN: also what a dead daemon left (weft detach cleans it up).
            auto d = run_command({o_.weft, "detach", nqn, "--run-dir", o_.attach_run_dir});
            if (d.rc != 0 && d.err.find("not attached") == std::string::npos)
                return internal(fmt::format("detaching {}: {}", dev, d.why()));
        }
        std::error_code ec;
        fs::remove(state_path(id), ec);
        spdlog::info("NodeUnstageVolume {}: {} detached", id, dev);
    }
    return Status::OK;
}

Status node_service::NodePublishVolume(ctx*, const v1::NodePublishVolumeRequest* req,
                                       v1::NodePublishVolumeResponse*) {
    const std::string& id = req->volume_id();
    const std::string& target = req->target_path();
    if (id.empty()) return bad("NodePublishVolume needs a volume_id");
    if (target.empty()) return bad("NodePublishVolume needs a target_path");
    if (req->staging_target_path().empty())
        return bad("NodePublishVolume needs a staging_target_path (the volume is staged first)");
    if (!req->has_volume_capability()) return bad("NodePublishVolume needs a volume capability");
    if (auto why = capability_problem(req->volume_capability()); !why.empty()) return bad(why);
    if (!safe_id(id)) return {StatusCode::NOT_FOUND, "no volume " + id};
    inflight_guard g(busy_, id);
    if (!g) return busy(id);
    auto st = read_json_file(state_path(id));
    if (!st || st->value("staging", "") != req->staging_target_path())
        return {StatusCode::FAILED_PRECONDITION,
                fmt::format("volume {} is not staged at {}", id, req->staging_target_path())};
    bool block = req->volume_capability().has_block();
    if (block != st->value("block", false))
        return bad(fmt::format("volume {} was staged as {}", id, block ? "a mount" : "a block"));
    if (is_mount_point(target)) return Status::OK;
    std::error_code ec;
    std::string source;
    if (block) {
        source = device_of(*st);
        if (source.empty())
            return {StatusCode::FAILED_PRECONDITION,
                    fmt::format("volume {}'s attachment is gone: stage it again", id)};
        fs::create_directories(fs::path(target).parent_path(), ec);
        if (!fs::exists(target)) std::ofstream(target).flush();  // a file to bind the device on
    } else {
        source = req->staging_target_path();
        fs::create_directories(target, ec);
    }
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
        return internal(fmt::format("bind {} on {}: {}", source, target, std::strerror(errno)));
    if (req->readonly() &&
        ::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
        int e = errno;
        ::umount2(target.c_str(), 0);
        return internal(fmt::format("read-only {}: {}", target, std::strerror(e)));
    }
    spdlog::info("NodePublishVolume {}: {} on {}{}", id, source, target,
                 req->readonly() ? " (read-only)" : "");
    return Status::OK;
}

Status node_service::NodeUnpublishVolume(ctx*, const v1::NodeUnpublishVolumeRequest* req,
                                         v1::NodeUnpublishVolumeResponse*) {
    const std::string& id = req->volume_id();
    const std::string& target = req->target_path();
    if (id.empty()) return bad("NodeUnpublishVolume needs a volume_id");
    if (target.empty()) return bad("NodeUnpublishVolume needs a target_path");
    inflight_guard g(busy_, id);
    if (!g) return busy(id);
    if (Status s = unmount(target); !s.ok()) return s;
    std::error_code ec;
    fs::remove(target, ec);  // the directory or file made for it
    return Status::OK;
}

Status node_service::NodeGetVolumeStats(ctx*, const v1::NodeGetVolumeStatsRequest* req,
                                        v1::NodeGetVolumeStatsResponse* res) {
    const std::string& id = req->volume_id();
    const std::string& path = req->volume_path();
    if (id.empty()) return bad("NodeGetVolumeStats needs a volume_id");
    if (path.empty()) return bad("NodeGetVolumeStats needs a volume_path");
    auto st = safe_id(id) ? read_json_file(state_path(id)) : std::nullopt;
    if (!st) return {StatusCode::NOT_FOUND, "volume " + id + " is not staged on this node"};
    std::string source;
    if (!is_mount_point(path, &source)) return {StatusCode::NOT_FOUND, path + " is not mounted"};
    std::string dev = device_of(*st);
    // Abnormal: the attachment is gone (its daemon died: its FUSE file does
    // not answer; or its device is another's now).
    std::string backing = st->value("backing", std::string());
    struct stat bs {};
    auto* cond = res->mutable_volume_condition();
    if (dev.empty() || (!via_kernel(*st) && ::stat(backing.c_str(), &bs) != 0)) {
        cond->set_abnormal(true);
        cond->set_message(fmt::format("the attachment of volume {} is gone", id));
    } else if (via_kernel(*st) && kernel_nvme::live_paths(st->value("nqn", "")) == 0) {
        cond->set_abnormal(true);
        cond->set_message(
            fmt::format("no path to {} is live: the kernel is reconnecting, "
                        "I/O waits",
                        st->value("nqn", "")));
    } else {
        // A path that appeared after the stage (the standby's namespace,
        // after a switchover) gets the StorageClass's command timeout too.
        if (via_kernel(*st) && st->value("io_timeout", 0u))
            kernel_nvme::set_io_timeout(st->value("nqn", ""), st->value("nsid", 1u),
                                        st->value("io_timeout", 0u));
        cond->set_abnormal(false);
        cond->set_message("attached as " + dev);
    }
    if (st->value("block", false)) {
        auto* u = res->add_usage();
        u->set_unit(v1::VolumeUsage::BYTES);
        u->set_total(int64_t(device_bytes(dev)));
        return Status::OK;
    }
    struct statvfs v {};
    if (::statvfs(path.c_str(), &v) != 0)
        return internal(fmt::format("statvfs {}: {}", path, std::strerror(errno)));
    auto* b = res->add_usage();
    b->set_unit(v1::VolumeUsage::BYTES);
    b->set_total(int64_t(v.f_blocks * v.f_frsize));
    b->set_available(int64_t(v.f_bavail * v.f_frsize));
    b->set_used(int64_t((v.f_blocks - v.f_bfree) * v.f_frsize));
    auto* i = res->add_usage();
    i->set_unit(v1::VolumeUsage::INODES);
    i->set_total(int64_t(v.f_files));
    i->set_available(int64_t(v.f_favail));
    i->set_used(int64_t(v.f_files - v.f_ffree));
    return Status::OK;
}

Status node_service::NodeExpandVolume(ctx*, const v1::NodeExpandVolumeRequest* req,
                                      v1::NodeExpandVolumeResponse* res) {
    const std::string& id = req->volume_id();
    const std::string& path = req->volume_path();
    if (id.empty()) return bad("NodeExpandVolume needs a volume_id");
    if (path.empty()) return bad("NodeExpandVolume needs a volume_path");
    if (!safe_id(id)) return {StatusCode::NOT_FOUND, "no volume " + id};
    inflight_guard g(busy_, id);
    if (!g) return busy(id);
    auto st = read_json_file(state_path(id));
    if (!st) return {StatusCode::NOT_FOUND, "volume " + id + " is not staged on this node"};
    std::string dev = device_of(*st);
    if (dev.empty())
        return {StatusCode::FAILED_PRECONDITION,
                fmt::format("volume {}'s attachment is gone: stage it again", id)};
    int64_t want = req->has_capacity_range() ? req->capacity_range().required_bytes() : 0;
    if (via_kernel(*st)) {
        uint64_t before = device_bytes(dev);
        if (auto why = kernel_nvme::rescan(st->value("nqn", "")); !why.empty())
            return internal(why);
        // The controllers read the namespace again in the background.
        for (int i = 0; i < 100; ++i) {
            uint64_t now = device_bytes(dev);
            if (want ? int64_t(now) >= want : now != before) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(want ? 100 : 10));
        }
    } else {
        auto r = run_command({o_.weft, "rescan", dev, "--run-dir", o_.attach_run_dir});
        if (r.rc != 0) return internal(fmt::format("rescan of {}: {}", dev, r.why()));
    }
    uint64_t bytes = device_bytes(dev);
    if (want > int64_t(bytes))
        return {StatusCode::FAILED_PRECONDITION,
                fmt::format("{} is {} bytes, not yet the {} asked: grow the volume first", dev,
                            bytes, req->capacity_range().required_bytes())};
    if (!st->value("block", false)) {
        std::string fstype = st->value("fs", std::string());
        std::string mounted_at = st->value("staging", std::string());
        auto grow = fstype == "xfs" ? run_command({"xfs_growfs", mounted_at})
                                    : run_command({"resize2fs", dev});
        if (grow.rc != 0)
            return internal(
                fmt::format("growing the {} file system of {}: {}", fstype, dev, grow.why()));
    }
    res->set_capacity_bytes(int64_t(bytes));
    spdlog::info("NodeExpandVolume {}: {} is {} bytes", id, dev, bytes);
    return Status::OK;
}

Status node_service::NodeGetCapabilities(ctx*, const v1::NodeGetCapabilitiesRequest*,
                                         v1::NodeGetCapabilitiesResponse* res) {
    using rpc = v1::NodeServiceCapability::RPC;
    for (auto t : {rpc::STAGE_UNSTAGE_VOLUME, rpc::GET_VOLUME_STATS, rpc::EXPAND_VOLUME,
                   rpc::VOLUME_CONDITION})
        res->add_capabilities()->mutable_rpc()->set_type(t);
    return Status::OK;
}

Status node_service::NodeGetInfo(ctx*, const v1::NodeGetInfoRequest*,
                                 v1::NodeGetInfoResponse* res) {
    res->set_node_id(o_.node_id);
    res->set_max_volumes_per_node(o_.max_volumes);
    (*res->mutable_accessible_topology()->mutable_segments())["topology.weft.io/node"] = o_.node_id;
    return Status::OK;
}

}  // namespace weft::csi
