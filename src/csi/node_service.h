// CSI's Node service: a published volume made a block device on this node
// (stage), then a file system mounted, or a raw device bound, where the
// pod's volume is (publish); grown on the node after the controller grew it.
//
// Contract:
// - NodeStageVolume attaches the namespace that ControllerPublishVolume's
//   publish_context names ("nqn", "address", "port", "hostNqn", and the
//   standby path "standbyAddress"/"standbyPort"): with the kernel's NVMe/TCP
//   host where the kernel has one (every path connected, the device is the
//   native-multipath head, so a nexus switchover keeps it; kernel_nvme.h),
//   else with userspace attach (`weft attach`: FUSE and a loop device, one
//   path, docs/attach.md); --attach picks one for good. Then, for a mount volume, makes a file
//   system only when the device is blank (ext4 unless the capability or the StorageClass's fsType
//   says xfs; a device that holds a file system keeps it) and mounts it on the staging path with
//   the capability's mount flags.
// - NodePublishVolume bind-mounts the staging path (mount) or the device
//   (block, onto a file) on the target path, read-only when asked.
// - Unpublish and unstage undo that and are OK when it is already undone;
//   unstage disconnects (detaches) the device once nothing holds it.
// - NodeExpandVolume reads the namespace's size again (a controller rescan,
//   or `weft rescan`) and grows the file system (xfs_growfs mounted, resize2fs for ext4).
// - NodeGetVolumeStats: bytes and inodes of a mounted volume (bytes of a
//   block one), and the volume condition: abnormal when the attachment is
//   gone (its daemon died, no kernel path is live) or the device is not the
//   one staged.
// - Per-volume state (device, staging path) lives in --state-dir, so that a
//   restarted plugin finds what it staged. Calls for one volume are
//   serialised (ABORTED while one is in flight).
#pragma once

#include <string>

#include "csi/inflight.h"
#include "csi/v1/csi.grpc.pb.h"

namespace weft::csi {

struct node_options {
    std::string node_id;
    std::string weft = "weft";  // the weft CLI (attach, detach, rescan)
    std::string attach_run_dir = "/run/weft/attach";
    std::string attach = "auto";  // kernel, user, or auto (kernel where it can)
    int ctrl_loss_tmo_s = 1800;   // the kernel host's: a path down this long is given up
    int reconnect_delay_s = 2;
    int keep_alive_tmo_s = 5;
    std::string state_dir = "/var/lib/weft/csi";
    unsigned max_volumes = 128;
};

class node_service final : public ::csi::v1::Node::Service {
  public:
    explicit node_service(node_options o) : o_(std::move(o)) {}

    using ctx = grpc::ServerContext;
    grpc::Status NodeStageVolume(ctx*, const ::csi::v1::NodeStageVolumeRequest*,
                                 ::csi::v1::NodeStageVolumeResponse*) override;
    grpc::Status NodeUnstageVolume(ctx*, const ::csi::v1::NodeUnstageVolumeRequest*,
                                   ::csi::v1::NodeUnstageVolumeResponse*) override;
    grpc::Status NodePublishVolume(ctx*, const ::csi::v1::NodePublishVolumeRequest*,
                                   ::csi::v1::NodePublishVolumeResponse*) override;
    grpc::Status NodeUnpublishVolume(ctx*, const ::csi::v1::NodeUnpublishVolumeRequest*,
                                     ::csi::v1::NodeUnpublishVolumeResponse*) override;
    grpc::Status NodeGetVolumeStats(ctx*, const ::csi::v1::NodeGetVolumeStatsRequest*,
                                    ::csi::v1::NodeGetVolumeStatsResponse*) override;
    grpc::Status NodeExpandVolume(ctx*, const ::csi::v1::NodeExpandVolumeRequest*,
                                  ::csi::v1::NodeExpandVolumeResponse*) override;
    grpc::Status NodeGetCapabilities(ctx*, const ::csi::v1::NodeGetCapabilitiesRequest*,
                                     ::csi::v1::NodeGetCapabilitiesResponse*) override;
    grpc::Status NodeGetInfo(ctx*, const ::csi::v1::NodeGetInfoRequest*,
                             ::csi::v1::NodeGetInfoResponse*) override;

  private:
    std::string state_path(const std::string& volume_id) const;
    node_options o_;
    inflight busy_;
};

}  // namespace weft::csi
