// An in-process weft target for the initiator tests: a 2-reactor runtime
// serving NVMe/TCP on 127.0.0.1 (ephemeral port).
//
//   with_target([](fixture& f) -> task<void> {
//       auto c = co_await controller::connect(f.options(host_a));
//       ...
//   });
//
// Subsystem `nqn`: hosts A and B only; namespace 1, a malloc bdev of
// ns1_blocks 512-byte blocks.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "initiator/controller.h"
#include "nvmf/target.h"
#include "nvmf/tcp_queue.h"
#include "runtime/test_util.h"

namespace weft::test {

inline constexpr const char* nqn = "nqn.2024-01.io.weft.test:initiator";
inline constexpr uint64_t ns1_blocks = 1u << 18;  // 128 MiB

struct host {
    std::string nqn;
    initiator::host_id id;
};
extern const host host_a, host_b, host_c;

struct fixture {
    nvmf::target tgt;
    std::shared_ptr<nvmf::subsystem> ss;
    socket_address addr;

    // Controller options for `h`: one I/O queue on the calling reactor.
    initiator::controller_options options(const host& h) const;
};

void with_target(std::function<task<void>(fixture&)> body, nvmf::tcp_options tcp = {});

// Fills `buf` with bytes that depend on `seed` and the offset.
void fill(std::span<std::byte> buf, uint32_t seed);

}  // namespace weft::test
