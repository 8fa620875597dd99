#include "csi/capabilities.h"

#include <fmt/format.h>

namespace weft::csi {

std::string capability_problem(const ::csi::v1::VolumeCapability& c) {
    using mode = ::csi::v1::VolumeCapability::AccessMode;
    if (c.has_mount()) {
        const std::string& fs = c.mount().fs_type();
        if (!fs.empty() && fs != "ext4" && fs != "xfs")
            return fmt::format("file system \"{}\" is not one weft makes (ext4, xfs)", fs);
    } else if (!c.has_block()) {
        return "a volume capability needs an access type (block or mount)";
    }
    switch (c.access_mode().mode()) {
        case mode::SINGLE_NODE_WRITER:
        case mode::SINGLE_NODE_READER_ONLY:
        case mode::SINGLE_NODE_SINGLE_WRITER:
        case mode::SINGLE_NODE_MULTI_WRITER:
            return {};
        case mode::UNKNOWN:
            return "a volume capability needs an access mode";
        default:
            return fmt::format(
                "access mode {} is not served: a weft volume is attached to one "
                "node at a time",
                mode::Mode_Name(c.access_mode().mode()));
    }
}

}  // namespace weft::csi
