// The Linux kernel's NVMe/TCP host, driven for the CSI node plugin: a
// volume's paths connected through /dev/nvme-fabrics (what libnvme and
// nvme-cli write), its namespace found in sysfs,
// rescanned after a resize, disconnected when the node lets it go.
//
// Contract:
// - available(): this kernel can be an NVMe/TCP host (nvme_tcp loaded, or
//   loaded now by modprobe, and /dev/nvme-fabrics present).
// - connect(): one controller per path of subsystem `nqn` as host
//   `host_nqn`, with a host ID derived from the host NQN (the kernel refuses
//   one host NQN under two host IDs: names.h's host_id_of), the reconnect/loss/keep-alive
//   timeouts given; a path already connected is left as it is. It fails only
//   when no path is connected afterwards: a dead standby is the control
//   plane's to repair, the volume serves through the other path.
// - namespace_device(): "/dev/nvmeXnY" of namespace `nsid` of `nqn`: the
//   native-multipath head when the kernel has native multipath (every path
//   under one device, which survives a nexus switchover), else the single
//   path's namespace; "" when there is none (yet: it appears a moment after
//   connect; wait_namespace polls for it).
// - rescan(): every live controller of `nqn` reads its namespaces again (a
//   grown volume's size).
// - live_paths(): how many controllers of `nqn` are live (0: the volume is
//   unreachable from this node, I/O queues until a path comes back).
// - disconnect(): every controller of `nqn`; OK when there is none.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace weft::csi::kernel_nvme {

struct path {
    std::string address, port;
};

struct connect_options {
    std::string nqn, host_nqn;
    std::vector<path> paths;
    int ctrl_loss_tmo_s = 1800;  // a path down this long is given up
    int reconnect_delay_s = 2;
    int keep_alive_tmo_s = 5;  // how soon a dead path is noticed
};

bool available();

// "" on success, else a sentence.
std::string connect(const connect_options& o);
std::string disconnect(const std::string& nqn);
std::string rescan(const std::string& nqn);

std::string namespace_device(const std::string& nqn, uint32_t nsid);
std::string wait_namespace(const std::string& nqn, uint32_t nsid, std::chrono::milliseconds limit);
unsigned live_paths(const std::string& nqn);

// Sets the block layer's command timeout of the namespace's path devices
// (and of the device itself where it has one): a command that takes longer
// makes the kernel reset that controller. "" on success, else a sentence.
std::string set_io_timeout(const std::string& nqn, uint32_t nsid, unsigned seconds);

}  // namespace weft::csi::kernel_nvme
