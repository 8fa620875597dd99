// CSI conformance of weft-csi's Node service, through userspace attach on
// this machine: stage (attach, mkfs, mount), publish (bind, read-only),
// write files, expand (the file system grows), unpublish, unstage, then the
// same volume staged on another node with its files intact; raw block
// volumes; refusals. Environment (set by csi_test.sh when it runs as root):
//   WEFT_CSI_ENDPOINT        the controller plugin
//   WEFT_CSI_NODE_ENDPOINTS  "n1=unix:///...,n2=unix:///..." node plugins
//   WEFT_CSI_WORK            a scratch directory for staging and target paths
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "csi/v1/csi.grpc.pb.h"
#include "csi_test_util.h"

namespace {

namespace v1 = ::csi::v1;
namespace fs = std::filesystem;
using grpc::StatusCode;

constexpr int64_t MiB = 1 << 20;

#define ASSERT_OK(status)                           \
    do {                                            \
        grpc::Status s_ = (status);                 \
        ASSERT_TRUE(s_.ok()) << s_.error_message(); \
    } while (0)

using weft::csi::testing::block_cap;
using weft::csi::testing::mount_cap;

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

class CsiNode : public ::testing::Test {
  protected:
    void SetUp() override {
        const char* nodes = std::getenv("WEFT_CSI_NODE_ENDPOINTS");
        const char* work = std::getenv("WEFT_CSI_WORK");
        if (!nodes || !*nodes || !work)
            GTEST_SKIP() << "no node plugins (csi_test.sh starts them when it runs as root)";
        work_ = work;
        std::string s = nodes;
        for (size_t at = 0; at < s.size();) {
            size_t c = s.find(',', at);
            if (c == std::string::npos) c = s.size();
            std::string kv = s.substr(at, c - at);
            size_t eq = kv.find('=');
            auto ch = grpc::CreateChannel(kv.substr(eq + 1), grpc::InsecureChannelCredentials());
            node_[kv.substr(0, eq)] = v1::Node::NewStub(ch);
            at = c + 1;
        }
        ASSERT_GE(node_.size(), 2u);
        controller_ = v1::Controller::NewStub(grpc::CreateChannel(
            std::getenv("WEFT_CSI_ENDPOINT"), grpc::InsecureChannelCredentials()));
    }
    void TearDown() override {
        for (auto& [n, paths] : published_)
            for (auto& [target, vol] : paths) {
                v1::NodeUnpublishVolumeRequest r;
                r.set_volume_id(vol);
                r.set_target_path(target);
                v1::NodeUnpublishVolumeResponse res;
                node_call(n, &v1::Node::Stub::NodeUnpublishVolume, r, res);
            }
        for (auto& [n, paths] : staged_)
            for (auto& [staging, vol] : paths) {
                v1::NodeUnstageVolumeRequest r;
                r.set_volume_id(vol);
                r.set_staging_target_path(staging);
                v1::NodeUnstageVolumeResponse res;
                EXPECT_TRUE(node_call(n, &v1::Node::Stub::NodeUnstageVolume, r, res).ok());
            }
        for (auto& id : volumes_) {
            v1::ControllerUnpublishVolumeRequest u;
            u.set_volume_id(id);
            v1::ControllerUnpublishVolumeResponse ur;
            ctl(&v1::Controller::Stub::ControllerUnpublishVolume, u, ur);
            v1::DeleteVolumeRequest d;
            d.set_volume_id(id);
            v1::DeleteVolumeResponse dr;
            EXPECT_TRUE(ctl(&v1::Controller::Stub::DeleteVolume, d, dr).ok()) << id;
        }
    }

    template <class Req, class Res>
    grpc::Status node_call(const std::string& n,
                           grpc::Status (v1::Node::Stub::*m)(grpc::ClientContext*, const Req&,
                                                             Res*),
                           const Req& req, Res& res) {
        return weft::csi::testing::call(*node_.at(n), m, req, res);
    }
    template <class Req, class Res>
    grpc::Status ctl(grpc::Status (v1::Controller::Stub::*m)(grpc::ClientContext*, const Req&,
                                                             Res*),
                     const Req& req, Res& res) {
        return weft::csi::testing::call(*controller_, m, req, res);
    }

    std::string create(const std::string& name, int64_t bytes,
                       std::map<std::string, std::string> params) {
        v1::CreateVolumeRequest r;
        r.set_name(name);
        r.mutable_capacity_range()->set_required_bytes(bytes);
        *r.add_volume_capabilities() = mount_cap();
        for (auto& [k, v] : params) (*r.mutable_parameters())[k] = v;
        v1::CreateVolumeResponse res;
        grpc::Status s = ctl(&v1::Controller::Stub::CreateVolume, r, res);
        EXPECT_TRUE(s.ok()) << s.error_message();
        volumes_.push_back(res.volume().volume_id());
        context_[res.volume().volume_id()] = {res.volume().volume_context().begin(),
                                              res.volume().volume_context().end()};
        return res.volume().volume_id();
    }
    std::map<std::string, std::string> publish(const std::string& vol, const std::string& n) {
        v1::ControllerPublishVolumeRequest r;
        r.set_volume_id(vol);
        r.set_node_id(n);
        *r.mutable_volume_capability() = mount_cap();
        v1::ControllerPublishVolumeResponse res;
        grpc::Status s = ctl(&v1::Controller::Stub::ControllerPublishVolume, r, res);
        EXPECT_TRUE(s.ok()) << s.error_message();
        return {res.publish_context().begin(), res.publish_context().end()};
    }
    void unpublish(const std::string& vol, const std::string& n) {
        v1::ControllerUnpublishVolumeRequest r;
        r.set_volume_id(vol);
        r.set_node_id(n);
        v1::ControllerUnpublishVolumeResponse res;
        ASSERT_OK(ctl(&v1::Controller::Stub::ControllerUnpublishVolume, r, res));
    }
    grpc::Status stage(const std::string& n, const std::string& vol, const std::string& staging,
                       const v1::VolumeCapability& cap,
                       const std::map<std::string, std::string>& pc) {
        v1::NodeStageVolumeRequest r;
        r.set_volume_id(vol);
        r.set_staging_target_path(staging);
        *r.mutable_volume_capability() = cap;
        for (auto& [k, v] : pc) (*r.mutable_publish_context())[k] = v;
        for (auto& [k, v] : context_[vol]) (*r.mutable_volume_context())[k] = v;
        v1::NodeStageVolumeResponse res;
        grpc::Status s = node_call(n, &v1::Node::Stub::NodeStageVolume, r, res);
        if (s.ok()) staged_[n][staging] = vol;
        return s;
    }
    grpc::Status unstage(const std::string& n, const std::string& vol, const std::string& staging) {
        v1::NodeUnstageVolumeRequest r;
        r.set_volume_id(vol);
        r.set_staging_target_path(staging);
        v1::NodeUnstageVolumeResponse res;
        grpc::Status s = node_call(n, &v1::Node::Stub::NodeUnstageVolume, r, res);
        if (s.ok()) staged_[n].erase(staging);
        return s;
    }
    grpc::Status node_publish(const std::string& n, const std::string& vol,
                              const std::string& staging, const std::string& target,
                              const v1::VolumeCapability& cap, bool ro = false) {
        v1::NodePublishVolumeRequest r;
        r.set_volume_id(vol);
        r.set_staging_target_path(staging);
        r.set_target_path(target);
        *r.mutable_volume_capability() = cap;
        r.set_readonly(ro);
        v1::NodePublishVolumeResponse res;
        grpc::Status s = node_call(n, &v1::Node::Stub::NodePublishVolume, r, res);
        if (s.ok()) published_[n][target] = vol;
        return s;
    }
    grpc::Status node_unpublish(const std::string& n, const std::string& vol,
                                const std::string& target) {
        v1::NodeUnpublishVolumeRequest r;
        r.set_volume_id(vol);
        r.set_target_path(target);
        v1::NodeUnpublishVolumeResponse res;
        grpc::Status s = node_call(n, &v1::Node::Stub::NodeUnpublishVolume, r, res);
        if (s.ok()) published_[n].erase(target);
        return s;
    }
    v1::NodeGetVolumeStatsResponse stats(const std::string& n, const std::string& vol,
                                         const std::string& path) {
        v1::NodeGetVolumeStatsRequest r;
        r.set_volume_id(vol);
        r.set_volume_path(path);
        v1::NodeGetVolumeStatsResponse res;
        grpc::Status s = node_call(n, &v1::Node::Stub::NodeGetVolumeStats, r, res);
        EXPECT_TRUE(s.ok()) << s.error_message();
        return res;
    }
    std::string path(const std::string& n, const std::string& what) {
        return work_ + "/" + n + "/" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name() + "/" + what;
    }

    std::string work_;
    std::map<std::string, std::unique_ptr<v1::Node::Stub>> node_;
    std::unique_ptr<v1::Controller::Stub> controller_;
    std::vector<std::string> volumes_;
    std::map<std::string, std::map<std::string, std::string>> context_;
    std::map<std::string, std::map<std::string, std::string>> staged_, published_;
};

TEST_F(CsiNode, InfoAndCapabilities) {
    v1::NodeGetInfoResponse info;
    ASSERT_OK(node_call("n1", &v1::Node::Stub::NodeGetInfo, v1::NodeGetInfoRequest(), info));
    EXPECT_EQ(info.node_id(), "n1");
    EXPECT_GT(info.max_volumes_per_node(), 0);
    EXPECT_EQ(info.accessible_topology().segments().at("topology.weft.io/node"), "n1");
    v1::NodeGetCapabilitiesResponse caps;
    ASSERT_OK(node_call("n1", &v1::Node::Stub::NodeGetCapabilities,
                        v1::NodeGetCapabilitiesRequest(), caps));
    std::set<int> got;
    for (auto& c : caps.capabilities()) got.insert(c.rpc().type());
    using rpc = v1::NodeServiceCapability::RPC;
    for (int want : {rpc::STAGE_UNSTAGE_VOLUME, rpc::GET_VOLUME_STATS, rpc::EXPAND_VOLUME,
                     rpc::VOLUME_CONDITION})
        EXPECT_TRUE(got.count(want)) << rpc::Type_Name(rpc::Type(want));
}

TEST_F(CsiNode, RefusesMissingArgumentsAndUnstagedVolumes) {
    std::string vol = create("csi-node-refusals", 8 * MiB, {{"repl", "1"}});
    EXPECT_CODE(stage("n1", "", path("n1", "s"), mount_cap(), {}), INVALID_ARGUMENT);
    EXPECT_CODE(stage("n1", vol, "", mount_cap(), {}), INVALID_ARGUMENT);
    EXPECT_CODE(stage("n1", vol, path("n1", "s"), v1::VolumeCapability(), {}), INVALID_ARGUMENT);
    // Not published: no publish_context to connect with.
    EXPECT_CODE(stage("n1", vol, path("n1", "s"), mount_cap(), {}), INVALID_ARGUMENT);
    EXPECT_CODE(node_publish("n1", vol, path("n1", "s"), path("n1", "t"), mount_cap()),
                FAILED_PRECONDITION);
    EXPECT_CODE(node_publish("n1", vol, "", path("n1", "t"), mount_cap()), INVALID_ARGUMENT);
    v1::NodeGetVolumeStatsRequest r;
    r.set_volume_id(vol);
    r.set_volume_path(path("n1", "t"));
    v1::NodeGetVolumeStatsResponse res;
    EXPECT_CODE(node_call("n1", &v1::Node::Stub::NodeGetVolumeStats, r, res), NOT_FOUND);
    // Undoing what was never done: OK.
    EXPECT_TRUE(node_unpublish("n1", vol, path("n1", "t")).ok());
    EXPECT_TRUE(unstage("n1", vol, path("n1", "s")).ok());
    // A publish_context whose values would reach the kernel's fabrics
    // options, or a malformed ioTimeout: refused before anything connects.
    auto pc = publish(vol, "n1");
    auto bad_pc = pc;
    bad_pc["address"] = "127.0.0.1,duplicate_connect";
    EXPECT_CODE(stage("n1", vol, path("n1", "s"), mount_cap(), bad_pc), INVALID_ARGUMENT);
    bad_pc = pc;
    bad_pc["port"] = "70000";
    EXPECT_CODE(stage("n1", vol, path("n1", "s"), mount_cap(), bad_pc), INVALID_ARGUMENT);
    bad_pc = pc;
    bad_pc["hostNqn"] = "nqn.2026-11.io.weft:node:n1,hostid=x";
    EXPECT_CODE(stage("n1", vol, path("n1", "s"), mount_cap(), bad_pc), INVALID_ARGUMENT);
    context_[vol]["ioTimeout"] = "30x";
    EXPECT_CODE(stage("n1", vol, path("n1", "s"), mount_cap(), pc), INVALID_ARGUMENT);
    context_[vol].erase("ioTimeout");
    unpublish(vol, "n1");
}

TEST_F(CsiNode, StorageClassChoosesTheAttach) {
    // attach: kernel on a node whose kernel has no nvme-tcp (this machine):
    // refused, naming the StorageClass; where it has one, kernel attach.
    std::string vol = create("csi-node-kernel", 8 * MiB, {{"repl", "1"}, {"attach", "kernel"}});
    ASSERT_EQ(context_[vol]["attach"], "kernel");
    auto pc = publish(vol, "n1");
    grpc::Status s = stage("n1", vol, path("n1", "k"), mount_cap(), pc);
    if (s.ok()) {
        EXPECT_TRUE(std::filesystem::exists("/sys/module/nvme_tcp"));
        EXPECT_TRUE(unstage("n1", vol, path("n1", "k")).ok());
    } else {
        EXPECT_CODE(s, FAILED_PRECONDITION);
        EXPECT_NE(s.error_message().find("StorageClass"), std::string::npos) << s.error_message();
    }
    unpublish(vol, "n1");
    // attach: user: userspace attach (a loop device) whatever the kernel has.
    std::string uv = create("csi-node-user", 8 * MiB, {{"repl", "1"}, {"attach", "user"}});
    pc = publish(uv, "n1");
    ASSERT_OK(stage("n1", uv, path("n1", "u"), block_cap(), pc));
    ASSERT_OK(unstage("n1", uv, path("n1", "u")));
    unpublish(uv, "n1");
}

TEST_F(CsiNode, StagePublishWriteExpandAndMoveToAnotherNode) {
    // xfs: its file system grows mounted (docs/attach.md), and it needs 300 MB.
    std::string vol = create("csi-node-fs", 320 * MiB, {{"repl", "2"}, {"fsType", "xfs"}});
    auto pc = publish(vol, "n1");
    std::string staging = path("n1", "staging"), target = path("n1", "pod");
    ASSERT_OK(stage("n1", vol, staging, mount_cap(), pc));
    ASSERT_OK(stage("n1", vol, staging, mount_cap(), pc));  // again: OK
    ASSERT_OK(node_publish("n1", vol, staging, target, mount_cap()));
    ASSERT_OK(node_publish("n1", vol, staging, target, mount_cap()));
    std::string data(3 * MiB + 123, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = char((i * 7919) >> 3);
    {
        std::ofstream f(target + "/data", std::ios::binary);
        f << data;
    }
    ::sync();
    auto st = stats("n1", vol, target);
    ASSERT_GE(st.usage_size(), 2);
    EXPECT_EQ(st.usage(0).unit(), v1::VolumeUsage::BYTES);
    EXPECT_GT(st.usage(0).total(), 250 * MiB);
    EXPECT_GE(st.usage(0).used(), 3 * MiB);
    EXPECT_EQ(st.usage(1).unit(), v1::VolumeUsage::INODES);
    EXPECT_FALSE(st.volume_condition().abnormal()) << st.volume_condition().message();
    int64_t before = st.usage(0).total();

    // Grown by the controller, then on the node, mounted.
    v1::ControllerExpandVolumeRequest ce;
    ce.set_volume_id(vol);
    ce.mutable_capacity_range()->set_required_bytes(384 * MiB);
    v1::ControllerExpandVolumeResponse cer;
    ASSERT_OK(ctl(&v1::Controller::Stub::ControllerExpandVolume, ce, cer));
    ASSERT_TRUE(cer.node_expansion_required());
    v1::NodeExpandVolumeRequest ne;
    ne.set_volume_id(vol);
    ne.set_volume_path(target);
    ne.set_staging_target_path(staging);
    *ne.mutable_capacity_range() = ce.capacity_range();
    *ne.mutable_volume_capability() = mount_cap();
    v1::NodeExpandVolumeResponse ner;
    ASSERT_OK(node_call("n1", &v1::Node::Stub::NodeExpandVolume, ne, ner));
    EXPECT_EQ(ner.capacity_bytes(), 384 * MiB);
    EXPECT_GE(stats("n1", vol, target).usage(0).total(), before + 60 * MiB);

    // Off n1: unpublish, unstage (each twice), the controller's unpublish.
    ASSERT_OK(node_unpublish("n1", vol, target));
    ASSERT_OK(node_unpublish("n1", vol, target));
    EXPECT_FALSE(fs::exists(target + "/data"));
    ASSERT_OK(unstage("n1", vol, staging));
    ASSERT_OK(unstage("n1", vol, staging));
    unpublish(vol, "n1");

    // On n2: the same files; a read-only publication refuses writes.
    pc = publish(vol, "n2");
    std::string staging2 = path("n2", "staging"), target2 = path("n2", "pod"),
                ro = path("n2", "ro");
    ASSERT_OK(stage("n2", vol, staging2, mount_cap(), pc));
    ASSERT_OK(node_publish("n2", vol, staging2, target2, mount_cap()));
    EXPECT_EQ(slurp(target2 + "/data"), data);
    ASSERT_OK(node_publish("n2", vol, staging2, ro, mount_cap(), /*ro=*/true));
    EXPECT_EQ(slurp(ro + "/data"), data);
    int fd = ::open((ro + "/new").c_str(), O_CREAT | O_WRONLY, 0600);
    EXPECT_LT(fd, 0) << "created a file on a read-only publication";
    EXPECT_EQ(errno, EROFS);
    if (fd >= 0) ::close(fd);
}

TEST_F(CsiNode, RawBlockVolume) {
    std::string vol = create("csi-node-block", 64 * MiB, {{"repl", "1"}});
    auto pc = publish(vol, "n1");
    std::string staging = path("n1", "staging"), target = path("n1", "dev");
    ASSERT_OK(stage("n1", vol, staging, block_cap(), pc));
    // Staged as a block volume: not to be published as a mount.
    EXPECT_CODE(node_publish("n1", vol, staging, path("n1", "dir"), mount_cap()), INVALID_ARGUMENT);
    ASSERT_OK(node_publish("n1", vol, staging, target, block_cap()));
    std::string block(1 * MiB, '\0');
    for (size_t i = 0; i < block.size(); ++i) block[i] = char(i * 31 + 5);
    int fd = ::open(target.c_str(), O_RDWR | O_DIRECT);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    void* buf = nullptr;
    ASSERT_EQ(::posix_memalign(&buf, 4096, block.size()), 0);
    std::memcpy(buf, block.data(), block.size());
    EXPECT_EQ(::pwrite(fd, buf, block.size(), 16 * MiB), ssize_t(block.size()));
    std::memset(buf, 0, block.size());
    EXPECT_EQ(::pread(fd, buf, block.size(), 16 * MiB), ssize_t(block.size()));
    EXPECT_EQ(std::memcmp(buf, block.data(), block.size()), 0);
    ::close(fd);
    free(buf);
    auto st = stats("n1", vol, target);
    ASSERT_EQ(st.usage_size(), 1);
    EXPECT_EQ(st.usage(0).total(), 64 * MiB);
    EXPECT_FALSE(st.volume_condition().abnormal()) << st.volume_condition().message();
    // Grown: the controller, then the node reads the new size.
    v1::ControllerExpandVolumeRequest ce;
    ce.set_volume_id(vol);
    ce.mutable_capacity_range()->set_required_bytes(96 * MiB);
    *ce.mutable_volume_capability() = block_cap();
    v1::ControllerExpandVolumeResponse cer;
    ASSERT_OK(ctl(&v1::Controller::Stub::ControllerExpandVolume, ce, cer));
    ASSERT_TRUE(cer.node_expansion_required());
    v1::NodeExpandVolumeRequest ne;
    ne.set_volume_id(vol);
    ne.set_volume_path(target);
    *ne.mutable_capacity_range() = ce.capacity_range();
    *ne.mutable_volume_capability() = block_cap();
    v1::NodeExpandVolumeResponse ner;
    ASSERT_OK(node_call("n1", &v1::Node::Stub::NodeExpandVolume, ne, ner));
    EXPECT_EQ(ner.capacity_bytes(), 96 * MiB);
    EXPECT_EQ(stats("n1", vol, target).usage(0).total(), 96 * MiB);
    ASSERT_OK(node_unpublish("n1", vol, target));
    ASSERT_OK(unstage("n1", vol, staging));
}

}  // namespace
