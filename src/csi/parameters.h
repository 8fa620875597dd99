// A StorageClass's parameters (CreateVolumeRequest.parameters), checked.
//
// Names a Mayastor user knows where the meaning is the same:
//   repl       replica count, 1..5 (default: weft-control's, 3)
//   thin       "true" | "false" (default true)
//   fsType     ext4 | xfs: the file system a mount volume gets when blank
//   ioTimeout  seconds the node's NVMe host waits for an I/O before it
//              resets the path (1..3600)
//   protocol   nvmf (the only one)
// and weft's own:
//   selector   "k=v,k2=v2": node labels every replica's node must have
//   attach     kernel | user | auto: how the node attaches the volume (the
//              kernel's NVMe/TCP host, userspace attach, or the node
//              plugin's own choice: its --attach)
// Keys starting with "csi.storage.k8s.io/" belong to the sidecars and are
// ignored; any other key is refused, naming it (a typo must not silently
// give a volume other than the one asked for).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace weft::csi {

struct volume_parameters {
    std::optional<unsigned> replicas;
    bool thin = true;
    std::string fs_type;  // "" when the StorageClass names none
    std::optional<unsigned> io_timeout_s;
    std::map<std::string, std::string> selector;
    std::string attach;  // "" when the StorageClass names none
};

struct parameters_result {
    volume_parameters p;
    std::string error;  // a sentence; empty when the parameters hold
};

parameters_result parse_parameters(const std::map<std::string, std::string>& in);

// `s` as a whole number in [lo, hi] (nothing before or after it), else
// nullopt: StorageClass values, and what the node reads back of them.
std::optional<unsigned> parse_unsigned(const std::string& s, unsigned lo, unsigned hi);

// What NodeStageVolume needs to know of them (CreateVolume's
// volume_context): "protocol", and "fsType" / "ioTimeout" / "attach" when
// set.
std::map<std::string, std::string> volume_context_of(const volume_parameters& p);

}  // namespace weft::csi
