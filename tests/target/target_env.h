// The target the loopback tests talk to: an in-process weft target on a
// 2-reactor runtime, serving NVMe/TCP on 127.0.0.1 (an ephemeral port).
//
//   TEST(area, name) {
//       run_with_target([](target_env& t) -> task<void> {
//           host_queue q;
//           CO_ASSERT_TRUE(co_await q.open(t.addr));
//           ...
//       });
//   }
//
// Subsystems:
//   allow_nqn    hosts A and B only; namespaces 1 (4096 blocks) and 2 (1024
//                blocks) of 512 bytes, malloc bdevs t.devs[0] and t.devs[1]
//   open_nqn     any host; namespace 1 (256 blocks)
//   private_nqn  host C only; no namespace
// plus the discovery subsystem.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "nvmf/target.h"
#include "nvmf/tcp_queue.h"
#include "nvmf/tcp_server.h"
#include "runtime/net.h"
#include "runtime/test_util.h"
#include "target/test_host.h"

namespace weft::test {

inline constexpr const char* allow_nqn = "nqn.2024-01.io.weft.test:allow";
inline constexpr const char* open_nqn = "nqn.2024-01.io.weft.test:open";
inline constexpr const char* private_nqn = "nqn.2024-01.io.weft.test:private";

struct host_identity {
    std::string nqn;
    hostid_t id;
};
extern const host_identity host_a, host_b, host_c;

inline constexpr uint32_t block_size = 512;
inline constexpr uint64_t ns1_blocks = 4096;
inline constexpr uint64_t ns2_blocks = 1024;

// The identifiers namespace `nsid` of the allow subsystem has: each byte
// non-zero and different per NSID and per kind.
nvmf::ns_ids ids_for(uint32_t nsid);

struct env_options {
    nvmf::tcp_options tcp{};
    nvmf::controller_limits limits{};
};

struct target_env {
    explicit target_env(const env_options& opt);
    ~target_env();

    nvmf::target tgt;
    std::shared_ptr<nvmf::subsystem> allow, open, priv;
    std::vector<std::shared_ptr<bdev::bdev>> devs;  // allow's namespaces 1 and 2
    socket_address addr;
    nvmf::tcp_server* server = nullptr;  // serving `addr`; more listen() calls allowed

    // Admin-queue Connect parameters of host `h` to subsystem `nqn`.
    connect_params params(const host_identity& h, const std::string& nqn, uint32_t kato = 0) const;
};

// Runs `body` on reactor 0 of a fresh 2-reactor runtime while the target
// serves; stops the server (closing every connection) when it ends. A test
// still running after 60 s aborts the process: a hang is a failure.
void run_with_target(std::function<task<void>(target_env&)> body, env_options opt = {});

}  // namespace weft::test
