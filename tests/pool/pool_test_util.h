// Helpers shared by the pool tests: devices, patterns, byte flips.
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "pool/pool.h"
#include "runtime/buffer_pool.h"
#include "runtime/test_util.h"
#include "runtime/uring_op.h"

namespace weft::pool::test {

using weft::test::run_reactors;

constexpr uint64_t small_cluster = 64 << 10;

inline std::shared_ptr<bdev::bdev> make_dev(uint64_t bytes = 16 << 20, uint32_t bs = 512) {
    return std::shared_ptr<bdev::bdev>(bdev::make_malloc_bdev("m0", bytes / bs, bs));
}

inline create_options small_opts() {
    return create_options{.cluster_size = small_cluster, .md_area_bytes = 64 << 10};
}

// The byte at `off` of a volume under pattern `seed`.
inline std::byte pat(uint64_t off, uint8_t seed) {
    uint64_t x = (off / 8 + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    return std::byte(uint8_t(x >> 32 ^ x ^ off));
}

// Writes `len` bytes of pattern `seed` at byte `off` of `ch` (block aligned).
inline task<int> put(bdev::channel& ch, uint32_t bs, uint64_t off, uint64_t len, uint8_t seed,
                     bool fua = false) {
    buffer b = buffer_pool::local().get(len);
    for (uint64_t i = 0; i < len; ++i) b.data()[i] = pat(off + i, seed);
    iovec v{b.data(), len};
    co_return co_await ch.write(off / bs, uint32_t(len / bs), std::span(&v, 1), fua);
}

// 0 when [off, off + len) holds pattern `seed` (or zeroes when seed is 0),
// the index+1 of the first wrong byte otherwise, or an errno below 0.
inline task<long> check(bdev::channel& ch, uint32_t bs, uint64_t off, uint64_t len, uint8_t seed) {
    buffer b = buffer_pool::local().get(len);
    iovec v{b.data(), len};
    int rc = co_await ch.read(off / bs, uint32_t(len / bs), std::span(&v, 1));
    if (rc != 0) co_return rc;
    for (uint64_t i = 0; i < len; ++i)
        if (b.data()[i] != (seed ? pat(off + i, seed) : std::byte{0})) co_return long(i + 1);
    co_return 0;
}

// XORs the byte at device offset `off` with `mask` (LevelDB's IncrementByte).
inline task<int> flip_byte(bdev::bdev& dev, uint64_t off, uint8_t mask = 0x40) {
    auto ch = dev.open_channel();
    uint32_t bs = dev.block_size();
    buffer b = buffer_pool::local().get(4096);
    iovec v{b.data(), bs};
    uint64_t lba = off / bs;
    if (int rc = co_await ch->read(lba, 1, std::span(&v, 1)); rc != 0) co_return rc;
    b.data()[off % bs] ^= std::byte(mask);
    co_return co_await ch->write(lba, 1, std::span(&v, 1), false);
}

}  // namespace weft::pool::test
