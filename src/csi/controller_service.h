// CSI's Controller service over weft-control's REST API: volumes,
// publications, snapshots, capacity and expansion as the CSI spec (v1.x)
// defines them, for Kubernetes' external-provisioner, -attacher,
// -snapshotter and -resizer.
//
// Contract:
// - Idempotent as the spec demands. A volume's UUID comes from its CSI name
//   (names.h): the same name with the same capacity and parameters gives
//   the same volume; with others, ALREADY_EXISTS. Deleting what is gone is
//   OK. A second call for a volume or snapshot while one is in flight is
//   answered ABORTED (the caller retries).
// - The spec's codes: INVALID_ARGUMENT (missing or bad fields, unknown
//   StorageClass parameters, unsupported capabilities), NOT_FOUND,
//   ALREADY_EXISTS, OUT_OF_RANGE (capacity), RESOURCE_EXHAUSTED (no pool
//   has room), FAILED_PRECONDITION (published elsewhere, snapshot in use),
//   UNAVAILABLE (weft-control does not answer), each with a sentence.
// - ControllerPublishVolume publishes to the node's host NQN (names.h) and
//   puts in publish_context what NodeStageVolume connects to: "nqn",
//   "address", "port", "hostNqn", and the standby path's
//   "standbyAddress"/"standbyPort" when the volume has one.
// - A volume made from another volume is made from a snapshot of it taken
//   for the purpose (deleted with the new volume).
// - Volumes are reachable from every node over NVMe/TCP: a volume has no
//   accessible topology; GetCapacity counts the pools of the nodes whose
//   labels match the topology asked about (key "topology.weft.io/node" is
//   the node's ID, "topology.weft.io/<label>" a node label).
// Thread-safe: gRPC calls it from several threads; nothing but the in-flight
// set is shared.
#pragma once

#include <string>

#include "control/rest_client.h"
#include "csi/inflight.h"
#include "csi/v1/csi.grpc.pb.h"

namespace weft::csi {

class controller_service final : public ::csi::v1::Controller::Service {
  public:
    explicit controller_service(const control::rest_client& control) : control_(control) {}

    using ctx = grpc::ServerContext;
    grpc::Status CreateVolume(ctx*, const ::csi::v1::CreateVolumeRequest*,
                              ::csi::v1::CreateVolumeResponse*) override;
    grpc::Status DeleteVolume(ctx*, const ::csi::v1::DeleteVolumeRequest*,
                              ::csi::v1::DeleteVolumeResponse*) override;
    grpc::Status ControllerPublishVolume(ctx*, const ::csi::v1::ControllerPublishVolumeRequest*,
                                         ::csi::v1::ControllerPublishVolumeResponse*) override;
    grpc::Status ControllerUnpublishVolume(ctx*, const ::csi::v1::ControllerUnpublishVolumeRequest*,
                                           ::csi::v1::ControllerUnpublishVolumeResponse*) override;
    grpc::Status ValidateVolumeCapabilities(
        ctx*, const ::csi::v1::ValidateVolumeCapabilitiesRequest*,
        ::csi::v1::ValidateVolumeCapabilitiesResponse*) override;
    grpc::Status ListVolumes(ctx*, const ::csi::v1::ListVolumesRequest*,
                             ::csi::v1::ListVolumesResponse*) override;
    grpc::Status GetCapacity(ctx*, const ::csi::v1::GetCapacityRequest*,
                             ::csi::v1::GetCapacityResponse*) override;
    grpc::Status ControllerGetCapabilities(ctx*, const ::csi::v1::ControllerGetCapabilitiesRequest*,
                                           ::csi::v1::ControllerGetCapabilitiesResponse*) override;
    grpc::Status CreateSnapshot(ctx*, const ::csi::v1::CreateSnapshotRequest*,
                                ::csi::v1::CreateSnapshotResponse*) override;
    grpc::Status DeleteSnapshot(ctx*, const ::csi::v1::DeleteSnapshotRequest*,
                                ::csi::v1::DeleteSnapshotResponse*) override;
    grpc::Status ListSnapshots(ctx*, const ::csi::v1::ListSnapshotsRequest*,
                               ::csi::v1::ListSnapshotsResponse*) override;
    grpc::Status ControllerExpandVolume(ctx*, const ::csi::v1::ControllerExpandVolumeRequest*,
                                        ::csi::v1::ControllerExpandVolumeResponse*) override;
    grpc::Status ControllerGetVolume(ctx*, const ::csi::v1::ControllerGetVolumeRequest*,
                                     ::csi::v1::ControllerGetVolumeResponse*) override;

  private:
    const control::rest_client& control_;
    inflight busy_;
};

}  // namespace weft::csi
