// CSI conformance of weft-csi's Identity and Controller services: the checks
// csi-sanity (kubernetes-csi/csi-test) makes of a controller plugin, over
// the plugin's unix socket, against weft-control and real engines that
// csi_test.sh starts. Environment (set by csi_test.sh):
//   WEFT_CSI_ENDPOINT  unix:///PATH of weft-csi
//   WEFT_CONTROL_URL   weft-control's REST API (to see what the plugin did)
//   WEFT_CSI_NODES     the weft nodes, comma-separated (CSI node IDs)
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "control/rest_client.h"
#include "csi/v1/csi.grpc.pb.h"
#include "csi_test_util.h"

namespace {

namespace v1 = ::csi::v1;
using grpc::StatusCode;

constexpr int64_t MiB = 1 << 20;

std::string env(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) {
        ADD_FAILURE() << name << " is not set: run this through tests/csi/csi_test.sh";
        return {};
    }
    return v;
}

using weft::csi::testing::block_cap;
using weft::csi::testing::mount_cap;

class Csi : public ::testing::Test {
  protected:
    void SetUp() override {
        auto ch = grpc::CreateChannel(env("WEFT_CSI_ENDPOINT"), grpc::InsecureChannelCredentials());
        identity_ = v1::Identity::NewStub(ch);
        controller_ = v1::Controller::NewStub(ch);
        control_ = std::make_unique<weft::control::rest_client>(env("WEFT_CONTROL_URL"),
                                                                std::chrono::seconds(60));
        std::string nodes = env("WEFT_CSI_NODES");
        for (size_t at = 0; at < nodes.size();) {
            size_t c = nodes.find(',', at);
            if (c == std::string::npos) c = nodes.size();
            nodes_.push_back(nodes.substr(at, c - at));
            at = c + 1;
        }
        ASSERT_GE(nodes_.size(), 2u);
    }
    // Whatever a test made goes, whatever it asserted.
    void TearDown() override {
        for (auto& id : volumes_) {
            v1::ControllerUnpublishVolumeRequest u;
            u.set_volume_id(id);
            v1::ControllerUnpublishVolumeResponse ur;
            call(&v1::Controller::Stub::ControllerUnpublishVolume, u, ur);
        }
        for (auto& id : volumes_) {
            v1::DeleteVolumeRequest d;
            d.set_volume_id(id);
            v1::DeleteVolumeResponse dr;
            EXPECT_TRUE(call(&v1::Controller::Stub::DeleteVolume, d, dr).ok()) << id;
        }
        for (auto& id : snapshots_) {
            v1::DeleteSnapshotRequest d;
            d.set_snapshot_id(id);
            v1::DeleteSnapshotResponse dr;
            EXPECT_TRUE(call(&v1::Controller::Stub::DeleteSnapshot, d, dr).ok()) << id;
        }
    }

    template <class Req, class Res>
    grpc::Status call(grpc::Status (v1::Controller::Stub::*m)(grpc::ClientContext*, const Req&,
                                                              Res*),
                      const Req& req, Res& res) {
        return weft::csi::testing::call(*controller_, m, req, res);
    }

    // A name unique to the test.
    std::string name(const std::string& what) {
        return std::string("csi-") +
               ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" + what;
    }

    grpc::Status create(const std::string& n, int64_t required, v1::CreateVolumeResponse& res,
                        std::map<std::string, std::string> params = {{"repl", "2"}},
                        int64_t limit = 0, const v1::VolumeContentSource* source = nullptr) {
        v1::CreateVolumeRequest r;
        r.set_name(n);
        if (required || limit) {
            r.mutable_capacity_range()->set_required_bytes(required);
            r.mutable_capacity_range()->set_limit_bytes(limit);
        }
        *r.add_volume_capabilities() = mount_cap();
        for (auto& [k, v] : params) (*r.mutable_parameters())[k] = v;
        if (source) *r.mutable_volume_content_source() = *source;
        grpc::Status s = call(&v1::Controller::Stub::CreateVolume, r, res);
        if (s.ok()) volumes_.insert(res.volume().volume_id());
        return s;
    }
    v1::Volume made(const std::string& n, int64_t required,
                    std::map<std::string, std::string> params = {{"repl", "2"}}) {
        v1::CreateVolumeResponse res;
        grpc::Status s = create(n, required, res, params);
        EXPECT_TRUE(s.ok()) << s.error_message();
        return res.volume();
    }
    v1::Snapshot snapshot(const std::string& n, const std::string& volume,
                          grpc::Status* st = nullptr) {
        v1::CreateSnapshotRequest r;
        r.set_name(n);
        r.set_source_volume_id(volume);
        v1::CreateSnapshotResponse res;
        grpc::Status s = call(&v1::Controller::Stub::CreateSnapshot, r, res);
        if (s.ok()) snapshots_.push_back(res.snapshot().snapshot_id());
        if (st)
            *st = s;
        else
            EXPECT_TRUE(s.ok()) << s.error_message();
        return res.snapshot();
    }
    grpc::Status publish(const std::string& vol, const std::string& node,
                         v1::ControllerPublishVolumeResponse& res) {
        v1::ControllerPublishVolumeRequest r;
        r.set_volume_id(vol);
        r.set_node_id(node);
        *r.mutable_volume_capability() = mount_cap();
        return call(&v1::Controller::Stub::ControllerPublishVolume, r, res);
    }
    grpc::Status unpublish(const std::string& vol, const std::string& node) {
        v1::ControllerUnpublishVolumeRequest r;
        r.set_volume_id(vol);
        r.set_node_id(node);
        v1::ControllerUnpublishVolumeResponse res;
        return call(&v1::Controller::Stub::ControllerUnpublishVolume, r, res);
    }
    nlohmann::json rest(const std::string& path) {
        auto a = control_->request("GET", path);
        EXPECT_TRUE(a.reached && a.status == 200) << path << ": " << a.detail;
        return a.body;
    }

    std::unique_ptr<v1::Identity::Stub> identity_;
    std::unique_ptr<v1::Controller::Stub> controller_;
    std::unique_ptr<weft::control::rest_client> control_;
    std::vector<std::string> nodes_;
    std::set<std::string> volumes_;
    std::vector<std::string> snapshots_;
};

// ---- Identity ---------------------------------------------------------------------

TEST_F(Csi, IdentityNamesTheDriverAndItsCapabilities) {
    grpc::ClientContext c1, c2, c3;
    v1::GetPluginInfoResponse info;
    ASSERT_TRUE(identity_->GetPluginInfo(&c1, {}, &info).ok());
    EXPECT_EQ(info.name(), "csi.weft.io");
    EXPECT_FALSE(info.vendor_version().empty());
    v1::GetPluginCapabilitiesResponse caps;
    ASSERT_TRUE(identity_->GetPluginCapabilities(&c2, {}, &caps).ok());
    std::set<int> services;
    bool online_expansion = false;
    for (auto& c : caps.capabilities()) {
        if (c.has_service()) services.insert(c.service().type());
        if (c.has_volume_expansion())
            online_expansion =
                c.volume_expansion().type() == v1::PluginCapability::VolumeExpansion::ONLINE;
    }
    EXPECT_TRUE(services.count(v1::PluginCapability::Service::CONTROLLER_SERVICE));
    EXPECT_TRUE(services.count(v1::PluginCapability::Service::VOLUME_ACCESSIBILITY_CONSTRAINTS));
    EXPECT_TRUE(online_expansion);
    v1::ProbeResponse probe;
    ASSERT_TRUE(identity_->Probe(&c3, {}, &probe).ok());
    EXPECT_TRUE(probe.ready().value());
}

TEST_F(Csi, ControllerCapabilities) {
    v1::ControllerGetCapabilitiesResponse res;
    ASSERT_TRUE(call(&v1::Controller::Stub::ControllerGetCapabilities,
                     v1::ControllerGetCapabilitiesRequest(), res)
                    .ok());
    std::set<int> got;
    for (auto& c : res.capabilities()) got.insert(c.rpc().type());
    using rpc = v1::ControllerServiceCapability::RPC;
    for (int want : {rpc::CREATE_DELETE_VOLUME, rpc::PUBLISH_UNPUBLISH_VOLUME, rpc::LIST_VOLUMES,
                     rpc::GET_CAPACITY, rpc::CREATE_DELETE_SNAPSHOT, rpc::LIST_SNAPSHOTS,
                     rpc::CLONE_VOLUME, rpc::EXPAND_VOLUME, rpc::GET_VOLUME,
                     rpc::LIST_VOLUMES_PUBLISHED_NODES, rpc::VOLUME_CONDITION})
        EXPECT_TRUE(got.count(want)) << rpc::Type_Name(rpc::Type(want));
}

// ---- CreateVolume / DeleteVolume ---------------------------------------------------

TEST_F(Csi, CreateVolumeRefusesMissingAndBadArguments) {
    v1::CreateVolumeResponse res;
    v1::CreateVolumeRequest r;
    *r.add_volume_capabilities() = mount_cap();
    EXPECT_CODE(call(&v1::Controller::Stub::CreateVolume, r, res), INVALID_ARGUMENT);  // no name
    r.set_name(name("v"));
    r.clear_volume_capabilities();
    EXPECT_CODE(call(&v1::Controller::Stub::CreateVolume, r, res), INVALID_ARGUMENT);  // no caps
    *r.add_volume_capabilities() =
        mount_cap("", v1::VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER);
    EXPECT_CODE(call(&v1::Controller::Stub::CreateVolume, r, res), INVALID_ARGUMENT);
    r.clear_volume_capabilities();
    *r.add_volume_capabilities() = mount_cap("ntfs");
    EXPECT_CODE(call(&v1::Controller::Stub::CreateVolume, r, res), INVALID_ARGUMENT);
    grpc::Status s = create(name("v"), 8 * MiB, res, {{"replicas", "2"}});
    EXPECT_CODE(s, INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("replicas"), std::string::npos) << s.error_message();
    EXPECT_CODE(create(name("v"), 8 * MiB, res, {{"repl", "9"}}), INVALID_ARGUMENT);
    EXPECT_CODE(create(name("v"), 16 * MiB, res, {}, 8 * MiB), OUT_OF_RANGE);
    EXPECT_CODE(create(name("v"), 0, res, {}, MiB / 2), OUT_OF_RANGE);  // no whole MiB fits
    // Nothing was made by any of them.
    EXPECT_EQ(rest("/v1/volumes")["volumes"].size(), 0u);
}

TEST_F(Csi, CreateVolumeIsIdempotentByName) {
    v1::Volume v = made(name("v"), 8 * MiB);
    EXPECT_EQ(v.capacity_bytes(), 8 * MiB);
    EXPECT_EQ(v.volume_context().at("protocol"), "nvmf");
    // The volume behind it: 2 replicas on 2 nodes.
    auto j = rest("/v1/volumes/" + v.volume_id());
    EXPECT_EQ(j["replicas"].size(), 2u);
    EXPECT_EQ(j["spec"]["size_bytes"], 8 * MiB);
    // Same name, same capacity: the same volume.
    v1::CreateVolumeResponse again;
    ASSERT_TRUE(create(name("v"), 8 * MiB, again).ok());
    EXPECT_EQ(again.volume().volume_id(), v.volume_id());
    EXPECT_EQ(again.volume().capacity_bytes(), 8 * MiB);
    // Same name, another capacity or replica count: ALREADY_EXISTS.
    EXPECT_CODE(create(name("v"), 16 * MiB, again), ALREADY_EXISTS);
    EXPECT_CODE(create(name("v"), 8 * MiB, again, {{"repl", "1"}}), ALREADY_EXISTS);
    EXPECT_EQ(rest("/v1/volumes")["volumes"].size(), 1u);
}

TEST_F(Csi, CreateVolumeSizes) {
    // No capacity range: 1 GiB (thin). A size that is not whole MiB is
    // rounded up; a limit alone gives at most the limit.
    EXPECT_EQ(made(name("default"), 0).capacity_bytes(), 1 << 30);
    EXPECT_EQ(made(name("round"), 5 * MiB + 1).capacity_bytes(), 6 * MiB);
    v1::CreateVolumeResponse res;
    ASSERT_TRUE(create(name("limit"), 0, res, {{"repl", "1"}}, 4 * MiB).ok());
    EXPECT_EQ(res.volume().capacity_bytes(), 4 * MiB);
    // A limit that is not whole MiB: the whole MiB below it.
    ASSERT_TRUE(create(name("limit2"), 0, res, {{"repl", "1"}}, 10 * MiB + 1).ok());
    EXPECT_EQ(res.volume().capacity_bytes(), 10 * MiB);
}

TEST_F(Csi, CreateVolumeWithAMaximumLengthName) {
    std::string n = "csi-" + std::string(124, 'x');  // 128 characters, the spec's maximum
    v1::Volume v = made(n, 8 * MiB);
    v1::CreateVolumeResponse again;
    ASSERT_TRUE(create(n, 8 * MiB, again).ok());
    EXPECT_EQ(again.volume().volume_id(), v.volume_id());
}

TEST_F(Csi, CreateVolumeWithoutRoomIsResourceExhausted) {
    v1::CreateVolumeResponse res;
    grpc::Status s = create(name("huge"), 1ll << 40, res, {{"repl", "1"}, {"thin", "false"}});
    EXPECT_CODE(s, RESOURCE_EXHAUSTED);
    EXPECT_EQ(rest("/v1/volumes")["volumes"].size(), 0u);
}

TEST_F(Csi, DeleteVolume) {
    v1::DeleteVolumeResponse res;
    v1::DeleteVolumeRequest r;
    EXPECT_CODE(call(&v1::Controller::Stub::DeleteVolume, r, res), INVALID_ARGUMENT);
    // An ID that names nothing, or nothing any more: OK.
    r.set_volume_id("not-a-volume");
    EXPECT_TRUE(call(&v1::Controller::Stub::DeleteVolume, r, res).ok());
    r.set_volume_id("0b7a0b0e-5a8e-5bd1-9c1e-000000000000");
    EXPECT_TRUE(call(&v1::Controller::Stub::DeleteVolume, r, res).ok());
    v1::Volume v = made(name("v"), 8 * MiB);
    r.set_volume_id(v.volume_id());
    EXPECT_TRUE(call(&v1::Controller::Stub::DeleteVolume, r, res).ok());
    EXPECT_TRUE(call(&v1::Controller::Stub::DeleteVolume, r, res).ok());
    auto a = control_->request("GET", "/v1/volumes/" + v.volume_id());
    EXPECT_EQ(a.status, 404);
    // A published volume is not deleted under its host.
    v1::Volume p = made(name("published"), 8 * MiB);
    v1::ControllerPublishVolumeResponse pr;
    ASSERT_TRUE(publish(p.volume_id(), nodes_[0], pr).ok());
    r.set_volume_id(p.volume_id());
    EXPECT_CODE(call(&v1::Controller::Stub::DeleteVolume, r, res), FAILED_PRECONDITION);
}

// ---- ValidateVolumeCapabilities -----------------------------------------------------

TEST_F(Csi, ValidateVolumeCapabilities) {
    v1::ValidateVolumeCapabilitiesRequest r;
    v1::ValidateVolumeCapabilitiesResponse res;
    *r.add_volume_capabilities() = mount_cap();
    EXPECT_CODE(call(&v1::Controller::Stub::ValidateVolumeCapabilities, r, res), INVALID_ARGUMENT);
    r.set_volume_id("0b7a0b0e-5a8e-5bd1-9c1e-000000000000");
    EXPECT_CODE(call(&v1::Controller::Stub::ValidateVolumeCapabilities, r, res), NOT_FOUND);
    v1::Volume v = made(name("v"), 8 * MiB);
    r.set_volume_id(v.volume_id());
    r.clear_volume_capabilities();
    EXPECT_CODE(call(&v1::Controller::Stub::ValidateVolumeCapabilities, r, res), INVALID_ARGUMENT);
    *r.add_volume_capabilities() = mount_cap("xfs");
    *r.add_volume_capabilities() = block_cap();
    ASSERT_TRUE(call(&v1::Controller::Stub::ValidateVolumeCapabilities, r, res).ok());
    EXPECT_TRUE(res.has_confirmed());
    EXPECT_EQ(res.confirmed().volume_capabilities_size(), 2);
    *r.add_volume_capabilities() =
        mount_cap("", v1::VolumeCapability::AccessMode::MULTI_NODE_READER_ONLY);
    res.Clear();
    ASSERT_TRUE(call(&v1::Controller::Stub::ValidateVolumeCapabilities, r, res).ok());
    EXPECT_FALSE(res.has_confirmed());
    EXPECT_FALSE(res.message().empty());
}

// ---- ListVolumes / ControllerGetVolume ----------------------------------------------

TEST_F(Csi, ListVolumesPages) {
    std::set<std::string> want;
    for (int i = 0; i < 5; ++i)
        want.insert(made(name(std::to_string(i)), 4 * MiB, {{"repl", "1"}}).volume_id());
    std::set<std::string> seen;
    std::string token;
    int pages = 0;
    do {
        v1::ListVolumesRequest r;
        r.set_max_entries(2);
        r.set_starting_token(token);
        v1::ListVolumesResponse res;
        ASSERT_TRUE(call(&v1::Controller::Stub::ListVolumes, r, res).ok());
        EXPECT_LE(res.entries_size(), 2);
        for (auto& e : res.entries()) {
            EXPECT_TRUE(seen.insert(e.volume().volume_id()).second) << "listed twice";
            EXPECT_EQ(e.volume().capacity_bytes(), 4 * MiB);
            EXPECT_FALSE(e.status().volume_condition().abnormal())
                << e.status().volume_condition().message();
        }
        token = res.next_token();
        ++pages;
    } while (!token.empty() && pages < 10);
    EXPECT_EQ(seen, want);
    EXPECT_EQ(pages, 3);
    v1::ListVolumesRequest r;
    v1::ListVolumesResponse res;
    r.set_starting_token("garbage");
    EXPECT_CODE(call(&v1::Controller::Stub::ListVolumes, r, res), ABORTED);
    r.set_starting_token("");
    r.set_max_entries(-1);
    EXPECT_CODE(call(&v1::Controller::Stub::ListVolumes, r, res), INVALID_ARGUMENT);
}

// ---- GetCapacity ---------------------------------------------------------------

TEST_F(Csi, GetCapacityCountsThePoolsOfTheTopology) {
    auto capacity = [&](std::map<std::string, std::string> segments,
                        std::map<std::string, std::string> params) {
        v1::GetCapacityRequest r;
        for (auto& [k, v] : segments) (*r.mutable_accessible_topology()->mutable_segments())[k] = v;
        for (auto& [k, v] : params) (*r.mutable_parameters())[k] = v;
        v1::GetCapacityResponse res;
        EXPECT_TRUE(call(&v1::Controller::Stub::GetCapacity, r, res).ok());
        return res;
    };
    auto all = capacity({}, {{"repl", "1"}});
    EXPECT_GT(all.available_capacity(), 0);
    EXPECT_GT(all.maximum_volume_size().value(), 0);
    auto one = capacity({{"topology.weft.io/node", nodes_[0]}}, {{"repl", "1"}});
    EXPECT_GT(one.available_capacity(), 0);
    EXPECT_LT(one.available_capacity(), all.available_capacity());
    // One node cannot hold two replicas.
    EXPECT_EQ(
        capacity({{"topology.weft.io/node", nodes_[0]}}, {{"repl", "2"}}).available_capacity(), 0);
    EXPECT_EQ(capacity({{"topology.weft.io/node", "nowhere"}}, {}).available_capacity(), 0);
    // A thick volume takes its room.
    made(name("thick"), 64 * MiB, {{"repl", "1"}, {"thin", "false"}});
    EXPECT_LE(capacity({}, {{"repl", "1"}}).available_capacity(),
              all.available_capacity() - 64 * MiB);
    v1::GetCapacityRequest bad;
    (*bad.mutable_parameters())["colour"] = "red";
    v1::GetCapacityResponse res;
    EXPECT_CODE(call(&v1::Controller::Stub::GetCapacity, bad, res), INVALID_ARGUMENT);
}

// ---- ControllerPublishVolume / ControllerUnpublishVolume -----------------------------

TEST_F(Csi, PublishRefusesMissingArgumentsAndUnknownObjects) {
    v1::ControllerPublishVolumeResponse res;
    v1::ControllerPublishVolumeRequest r;
    EXPECT_CODE(call(&v1::Controller::Stub::ControllerPublishVolume, r, res), INVALID_ARGUMENT);
    r.set_volume_id("0b7a0b0e-5a8e-5bd1-9c1e-000000000000");
    EXPECT_CODE(call(&v1::Controller::Stub::ControllerPublishVolume, r, res), INVALID_ARGUMENT);
    r.set_node_id(nodes_[0]);
    EXPECT_CODE(call(&v1::Controller::Stub::ControllerPublishVolume, r, res), INVALID_ARGUMENT);
    *r.mutable_volume_capability() = mount_cap();
    EXPECT_CODE(call(&v1::Controller::Stub::ControllerPublishVolume, r, res), NOT_FOUND);
    v1::Volume v = made(name("v"), 8 * MiB);
    EXPECT_CODE(publish(v.volume_id(), "some-fake-node-id", res), NOT_FOUND);
    v1::ControllerUnpublishVolumeRequest u;
    v1::ControllerUnpublishVolumeResponse ur;
    EXPECT_CODE(call(&v1::Controller::Stub::ControllerUnpublishVolume, u, ur), INVALID_ARGUMENT);
}

TEST_F(Csi, PublishToOneNodeAtATime) {
    v1::Volume v = made(name("v"), 8 * MiB);
    v1::ControllerPublishVolumeResponse res;
    ASSERT_TRUE(publish(v.volume_id(), nodes_[0], res).ok());
    auto& c = res.publish_context();
    EXPECT_EQ(c.at("hostNqn"), "nqn.2026-11.io.weft:node:" + nodes_[0]);
    EXPECT_FALSE(c.at("nqn").empty());
    EXPECT_FALSE(c.at("address").empty());
    EXPECT_GT(std::stoi(c.at("port")), 0);
    // A 2-replica volume published on a replica's node has a standby path.
    EXPECT_TRUE(c.count("standbyAddress") && c.count("standbyPort"));
    // weft-control publishes it to that host, through that node.
    auto j = rest("/v1/volumes/" + v.volume_id());
    EXPECT_EQ(j["published"]["host_nqn"], c.at("hostNqn"));
    EXPECT_EQ(j["published"]["nqn"], c.at("nqn"));
    // Twice: the same answer.
    v1::ControllerPublishVolumeResponse again;
    ASSERT_TRUE(publish(v.volume_id(), nodes_[0], again).ok());
    EXPECT_EQ(again.publish_context().at("nqn"), c.at("nqn"));
    // To another node while published: FAILED_PRECONDITION.
    EXPECT_CODE(publish(v.volume_id(), nodes_[1], again), FAILED_PRECONDITION);
    // The volume names its node.
    v1::ControllerGetVolumeRequest g;
    g.set_volume_id(v.volume_id());
    v1::ControllerGetVolumeResponse gr;
    ASSERT_TRUE(call(&v1::Controller::Stub::ControllerGetVolume, g, gr).ok());
    ASSERT_EQ(gr.status().published_node_ids_size(), 1);
    EXPECT_EQ(gr.status().published_node_ids(0), nodes_[0]);
    // Unpublished from the other node: not its publication, left alone.
    ASSERT_TRUE(unpublish(v.volume_id(), nodes_[1]).ok());
    EXPECT_TRUE(rest("/v1/volumes/" + v.volume_id())["published"].is_object());
    ASSERT_TRUE(unpublish(v.volume_id(), nodes_[0]).ok());
    EXPECT_TRUE(rest("/v1/volumes/" + v.volume_id())["published"].is_null());
    ASSERT_TRUE(unpublish(v.volume_id(), nodes_[0]).ok());  // twice: OK
    ASSERT_TRUE(unpublish("0b7a0b0e-5a8e-5bd1-9c1e-000000000000", nodes_[0]).ok());
    // Now the other node may have it.
    ASSERT_TRUE(publish(v.volume_id(), nodes_[1], again).ok());
    EXPECT_EQ(again.publish_context().at("hostNqn"), "nqn.2026-11.io.weft:node:" + nodes_[1]);
}

TEST_F(Csi, PublishToARegisteredHostWithoutAnEngine) {
    v1::Volume v = made(name("v"), 8 * MiB);
    v1::ControllerPublishVolumeResponse res;
    const std::string app = "app-only-node";
    EXPECT_CODE(publish(v.volume_id(), app, res), NOT_FOUND);
    // What weft-csi's node plugin does on such a node.
    nlohmann::json body = {{"host_nqn", "nqn.2026-11.io.weft:node:" + app}};
    auto a = control_->request("PUT", "/v1/hosts/" + app, &body);
    ASSERT_TRUE(a.reached && a.status == 201) << a.status << " " << a.detail;
    ASSERT_TRUE(publish(v.volume_id(), app, res).ok());
    EXPECT_EQ(res.publish_context().at("hostNqn"), "nqn.2026-11.io.weft:node:" + app);
    // The nexus is on a storage node.
    auto j = rest("/v1/volumes/" + v.volume_id());
    EXPECT_EQ(j["published"]["host_nqn"], "nqn.2026-11.io.weft:node:" + app);
    EXPECT_NE(std::find(nodes_.begin(), nodes_.end(), j["published"].value("node", "")),
              nodes_.end());
    // A host that has a volume is not forgotten.
    EXPECT_EQ(control_->request("DELETE", "/v1/hosts/" + app).status, 409);
    ASSERT_TRUE(unpublish(v.volume_id(), app).ok());
    EXPECT_EQ(control_->request("DELETE", "/v1/hosts/" + app).status, 204);
    EXPECT_CODE(publish(v.volume_id(), app, res), NOT_FOUND);
}

// ---- ControllerExpandVolume ---------------------------------------------------------

TEST_F(Csi, ExpandVolume) {
    v1::ControllerExpandVolumeRequest r;
    v1::ControllerExpandVolumeResponse res;
    r.mutable_capacity_range()->set_required_bytes(16 * MiB);
    EXPECT_CODE(call(&v1::Controller::Stub::ControllerExpandVolume, r, res), INVALID_ARGUMENT);
    r.set_volume_id("0b7a0b0e-5a8e-5bd1-9c1e-000000000000");
    EXPECT_CODE(call(&v1::Controller::Stub::ControllerExpandVolume, r, res), NOT_FOUND);
    v1::Volume v = made(name("v"), 8 * MiB);
    r.set_volume_id(v.volume_id());
    r.clear_capacity_range();
    EXPECT_CODE(call(&v1::Controller::Stub::ControllerExpandVolume, r, res), INVALID_ARGUMENT);
    r.mutable_capacity_range()->set_required_bytes(16 * MiB);
    ASSERT_TRUE(call(&v1::Controller::Stub::ControllerExpandVolume, r, res).ok());
    EXPECT_EQ(res.capacity_bytes(), 16 * MiB);
    EXPECT_TRUE(res.node_expansion_required());
    EXPECT_EQ(rest("/v1/volumes/" + v.volume_id())["spec"]["size_bytes"], 16 * MiB);
    // Published: it grows online; a block volume too has its node read the
    // new size.
    v1::ControllerPublishVolumeResponse pr;
    ASSERT_TRUE(publish(v.volume_id(), nodes_[0], pr).ok());
    r.mutable_capacity_range()->set_required_bytes(24 * MiB);
    *r.mutable_volume_capability() = block_cap();
    ASSERT_TRUE(call(&v1::Controller::Stub::ControllerExpandVolume, r, res).ok());
    EXPECT_EQ(res.capacity_bytes(), 24 * MiB);
    EXPECT_TRUE(res.node_expansion_required());  // its attachment reads the new size
    auto j = rest("/v1/volumes/" + v.volume_id());
    EXPECT_EQ(j["spec"]["size_bytes"], 24 * MiB);
    // Smaller than it is: it stays as it is.
    r.mutable_capacity_range()->set_required_bytes(8 * MiB);
    ASSERT_TRUE(call(&v1::Controller::Stub::ControllerExpandVolume, r, res).ok());
    EXPECT_EQ(res.capacity_bytes(), 24 * MiB);
}

// ---- snapshots and volumes made from them -------------------------------------------

TEST_F(Csi, CreateSnapshot) {
    v1::CreateSnapshotRequest r;
    v1::CreateSnapshotResponse res;
    r.set_source_volume_id("0b7a0b0e-5a8e-5bd1-9c1e-000000000000");
    EXPECT_CODE(call(&v1::Controller::Stub::CreateSnapshot, r, res), INVALID_ARGUMENT);  // no name
    r.set_name(name("s"));
    r.clear_source_volume_id();
    EXPECT_CODE(call(&v1::Controller::Stub::CreateSnapshot, r, res), INVALID_ARGUMENT);
    r.set_source_volume_id("0b7a0b0e-5a8e-5bd1-9c1e-000000000000");
    EXPECT_CODE(call(&v1::Controller::Stub::CreateSnapshot, r, res), NOT_FOUND);
    v1::Volume a = made(name("a"), 8 * MiB), b = made(name("b"), 8 * MiB);
    v1::Snapshot s = snapshot(name("s"), a.volume_id());
    EXPECT_TRUE(s.ready_to_use());
    EXPECT_EQ(s.size_bytes(), 8 * MiB);
    EXPECT_EQ(s.source_volume_id(), a.volume_id());
    EXPECT_GT(s.creation_time().seconds(), 0);
    // Again: the same snapshot; of another volume: ALREADY_EXISTS.
    v1::Snapshot again = snapshot(name("s"), a.volume_id());
    EXPECT_EQ(again.snapshot_id(), s.snapshot_id());
    grpc::Status st;
    snapshot(name("s"), b.volume_id(), &st);
    EXPECT_CODE(st, ALREADY_EXISTS);
    snapshot("snap-" + std::string(123, 'y'), a.volume_id());  // 128 characters
}

TEST_F(Csi, ListAndDeleteSnapshots) {
    v1::Volume a = made(name("a"), 8 * MiB), b = made(name("b"), 8 * MiB);
    v1::Snapshot sa1 = snapshot(name("a1"), a.volume_id());
    v1::Snapshot sa2 = snapshot(name("a2"), a.volume_id());
    v1::Snapshot sb = snapshot(name("b1"), b.volume_id());
    auto list = [&](const std::string& id, const std::string& vol, int32_t max,
                    const std::string& token, v1::ListSnapshotsResponse& res) {
        v1::ListSnapshotsRequest r;
        r.set_snapshot_id(id);
        r.set_source_volume_id(vol);
        r.set_max_entries(max);
        r.set_starting_token(token);
        res.Clear();
        return call(&v1::Controller::Stub::ListSnapshots, r, res);
    };
    v1::ListSnapshotsResponse res;
    ASSERT_TRUE(list(sb.snapshot_id(), "", 0, "", res).ok());
    ASSERT_EQ(res.entries_size(), 1);
    EXPECT_EQ(res.entries(0).snapshot().source_volume_id(), b.volume_id());
    ASSERT_TRUE(list("", a.volume_id(), 0, "", res).ok());
    EXPECT_EQ(res.entries_size(), 2);
    ASSERT_TRUE(list(sb.snapshot_id(), a.volume_id(), 0, "", res).ok());
    EXPECT_EQ(res.entries_size(), 0);
    ASSERT_TRUE(list("0b7a0b0e-5a8e-5bd1-9c1e-000000000000", "", 0, "", res).ok());
    EXPECT_EQ(res.entries_size(), 0);
    ASSERT_TRUE(list("no-such-snapshot", "", 0, "", res).ok());
    EXPECT_EQ(res.entries_size(), 0);
    ASSERT_TRUE(list("", "", 2, "", res).ok());
    EXPECT_EQ(res.entries_size(), 2);
    std::string token = res.next_token();
    ASSERT_FALSE(token.empty());
    ASSERT_TRUE(list("", "", 2, token, res).ok());
    EXPECT_EQ(res.entries_size(), 1);
    EXPECT_TRUE(res.next_token().empty());
    EXPECT_CODE(list("", "", 0, "99", res), ABORTED);

    v1::DeleteSnapshotRequest d;
    v1::DeleteSnapshotResponse dr;
    EXPECT_CODE(call(&v1::Controller::Stub::DeleteSnapshot, d, dr), INVALID_ARGUMENT);
    d.set_snapshot_id("0b7a0b0e-5a8e-5bd1-9c1e-000000000000");
    EXPECT_TRUE(call(&v1::Controller::Stub::DeleteSnapshot, d, dr).ok());
    d.set_snapshot_id(sa1.snapshot_id());
    EXPECT_TRUE(call(&v1::Controller::Stub::DeleteSnapshot, d, dr).ok());
    EXPECT_TRUE(call(&v1::Controller::Stub::DeleteSnapshot, d, dr).ok());
    ASSERT_TRUE(list("", a.volume_id(), 0, "", res).ok());
    EXPECT_EQ(res.entries_size(), 1);
    // A snapshot outlives its volume.
    v1::DeleteVolumeRequest dv;
    dv.set_volume_id(a.volume_id());
    v1::DeleteVolumeResponse dvr;
    ASSERT_TRUE(call(&v1::Controller::Stub::DeleteVolume, dv, dvr).ok());
    ASSERT_TRUE(list(sa2.snapshot_id(), "", 0, "", res).ok());
    EXPECT_EQ(res.entries_size(), 1);
}

TEST_F(Csi, VolumesFromSnapshotsAndVolumes) {
    v1::Volume a = made(name("a"), 8 * MiB);
    v1::Snapshot s = snapshot(name("s"), a.volume_id());
    // From the snapshot, at its size and larger.
    v1::VolumeContentSource src;
    src.mutable_snapshot()->set_snapshot_id(s.snapshot_id());
    v1::CreateVolumeResponse res;
    ASSERT_TRUE(create(name("same"), 8 * MiB, res, {}, 0, &src).ok());
    EXPECT_EQ(res.volume().content_source().snapshot().snapshot_id(), s.snapshot_id());
    auto j = rest("/v1/volumes/" + res.volume().volume_id());
    EXPECT_EQ(j["spec"]["source"]["snapshot"], s.snapshot_id());
    ASSERT_TRUE(create(name("larger"), 12 * MiB, res, {}, 0, &src).ok());
    EXPECT_EQ(res.volume().capacity_bytes(), 12 * MiB);
    EXPECT_EQ(rest("/v1/volumes/" + res.volume().volume_id())["spec"]["size_bytes"], 12 * MiB);
    v1::CreateVolumeResponse again;
    ASSERT_TRUE(create(name("larger"), 12 * MiB, again, {}, 0, &src).ok());
    EXPECT_EQ(again.volume().volume_id(), res.volume().volume_id());
    // Smaller than the snapshot: OUT_OF_RANGE.
    EXPECT_CODE(create(name("smaller"), 4 * MiB, res, {}, 4 * MiB, &src), OUT_OF_RANGE);
    // The snapshot is in use while a volume made from it lives.
    v1::DeleteSnapshotRequest d;
    d.set_snapshot_id(s.snapshot_id());
    v1::DeleteSnapshotResponse dr;
    EXPECT_CODE(call(&v1::Controller::Stub::DeleteSnapshot, d, dr), FAILED_PRECONDITION);
    // An unknown snapshot or volume: NOT_FOUND.
    v1::VolumeContentSource none;
    none.mutable_snapshot()->set_snapshot_id("0b7a0b0e-5a8e-5bd1-9c1e-000000000000");
    EXPECT_CODE(create(name("nosnap"), 8 * MiB, res, {}, 0, &none), NOT_FOUND);
    none.mutable_volume()->set_volume_id("0b7a0b0e-5a8e-5bd1-9c1e-000000000000");
    EXPECT_CODE(create(name("novol"), 8 * MiB, res, {}, 0, &none), NOT_FOUND);
    // From a volume: made through a snapshot of its own, which goes with it.
    v1::VolumeContentSource vs;
    vs.mutable_volume()->set_volume_id(a.volume_id());
    ASSERT_TRUE(create(name("copy"), 8 * MiB, res, {}, 0, &vs).ok());
    EXPECT_EQ(res.volume().content_source().volume().volume_id(), a.volume_id());
    std::string copy = res.volume().volume_id();
    auto snaps = rest("/v1/snapshots?volume=" + a.volume_id())["snapshots"];
    EXPECT_EQ(snaps.size(), 2u);
    v1::DeleteVolumeRequest dv;
    dv.set_volume_id(copy);
    v1::DeleteVolumeResponse dvr;
    ASSERT_TRUE(call(&v1::Controller::Stub::DeleteVolume, dv, dvr).ok());
    volumes_.erase(copy);
    EXPECT_EQ(rest("/v1/snapshots?volume=" + a.volume_id())["snapshots"].size(), 1u);
}

}  // namespace
