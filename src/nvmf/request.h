// One NVMe command in flight, as the transport hands it to the controller:
// the SQE, the completion to fill, and the command's data buffer.
#pragma once

#include <cstring>

#include "nvme/command.h"
#include "nvme/status.h"
#include "runtime/buffer_pool.h"

namespace weft::nvmf {

struct request {
    nvme::command cmd{};
    nvme::completion cpl{};
    // Host-to-controller data arrives here before execution; controller-to-
    // host data is written here by the handler. Sized by the SGL length.
    buffer data;
    uint32_t data_len = 0;

    void set(nvme::status s) { cpl.status = s.field(); }
    nvme::status status() const { return nvme::status::from_field(cpl.status); }
    std::span<std::byte> bytes() { return {data.data(), data_len}; }

    // Copies `n` bytes of a controller-to-host structure, truncated to the
    // transfer length the host asked for (the rest of the buffer is zeroed).
    void reply(const void* src, size_t n) {
        if (!data_len) return;
        size_t k = n < data_len ? n : data_len;
        std::memcpy(data.data(), src, k);
        if (k < data_len) std::memset(data.data() + k, 0, data_len - k);
    }
};

}  // namespace weft::nvmf
