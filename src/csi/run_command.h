// Running the node's tools (weft attach, mkfs, mount, blkid, xfs_growfs):
// argv straight to posix_spawnp (no shell), stdout and stderr captured.
#pragma once

#include <string>
#include <vector>

namespace weft::csi {

struct command_result {
    int rc = -1;  // exit status; -1 when it could not start or was killed
    std::string out, err;
    // "mkfs.xfs: <the last line it printed on stderr>" for a sentence.
    std::string why() const;
};

command_result run_command(const std::vector<std::string>& argv);

// Whether `path` is a mount point, and of what source (/proc/self/mountinfo).
bool is_mount_point(const std::string& path, std::string* source = nullptr,
                    std::string* fstype = nullptr);

// Where block device `dev` (its device number: however a mount spells its
// source) is mounted; "" when nowhere.
std::string mount_point_of_device(const std::string& dev);

}  // namespace weft::csi
