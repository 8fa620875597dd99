// How CSI's names map onto weft's identifiers.
//
// CSI names a volume or a snapshot by the caller's name (a PV name such as
// "pvc-<uuid>") and retries CreateVolume with the same name until it gets
// an answer; weft-control names them by UUID and makes a PUT with the same
// UUID a no-op. A name-based (version 5) UUID joins the two: the same name
// always gives the same volume, with no table to keep, and a retry after a
// crash of weft-csi lands on the volume the first try made.
//
// A CSI node ID is the weft node name of the host (its Kubernetes node
// name); the host connects with an NQN made from it (host_nqn_of), so that
// a publication can be traced back to its node (node_of_host_nqn).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "pool/uuid.h"

namespace weft::csi {

// RFC 9562's name-based UUID (version 5, SHA-1) of `name` in `ns`.
std::string uuid_v5(const pool::uuid& ns, std::string_view name);

// The UUID of the volume CSI calls `name`.
std::string volume_id_of(std::string_view name);
// The UUID of the snapshot CSI calls `name`.
std::string snapshot_id_of(std::string_view name);
// The UUID of the snapshot a volume made from another volume is cloned
// through (kept while the clone lives: deleted with it).
std::string clone_snapshot_id_of(std::string_view volume_id);

// Whether `s` is a UUID as weft writes them (any other ID names nothing).
bool is_weft_id(std::string_view s);

// "nqn.2026-11.io.weft:node:<node id>".
std::string host_nqn_of(std::string_view node_id);
// The host ID a node connects with as `host_nqn`: the UUID of a
// "nqn.2014-08.org.nvmexpress:uuid:<uuid>" NQN, else a name-based UUID of
// the NQN (the same on every connect: Linux refuses one host NQN under two
// host IDs).
std::string host_id_of(std::string_view host_nqn);
// The node ID in a host NQN made by host_nqn_of, else nullopt.
std::optional<std::string> node_of_host_nqn(std::string_view nqn);

}  // namespace weft::csi
