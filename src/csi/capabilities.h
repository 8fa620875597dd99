// Which CSI volume capabilities weft serves: a block device or a file
// system (ext4, xfs, or the default), on one node at a time (a volume is
// published to one host NQN). Multi-node access modes are refused.
#pragma once

#include <string>

#include "csi/v1/csi.pb.h"

namespace weft::csi {

// Empty when weft serves `c`, else a sentence saying what it does not.
std::string capability_problem(const ::csi::v1::VolumeCapability& c);

}  // namespace weft::csi
