#include "pool/metadata_store.h"

#include <spdlog/spdlog.h>

namespace weft::pool {

task<int> read_bytes(bdev::bdev& dev, bdev::channel& ch, uint64_t offset,
                     std::span<std::byte> buf) {
    uint32_t bs = dev.block_size();
    iovec v{buf.data(), buf.size()};
    co_return co_await ch.read(offset / bs, uint32_t(buf.size() / bs), std::span(&v, 1));
}

task<int> write_bytes(bdev::bdev& dev, bdev::channel& ch, uint64_t offset,
                      std::span<const std::byte> buf, bool fua) {
    uint32_t bs = dev.block_size();
    iovec v{const_cast<std::byte*>(buf.data()), buf.size()};
    co_return co_await ch.write(offset / bs, uint32_t(buf.size() / bs), std::span(&v, 1), fua);
}

task<result<pool_meta>> metadata_store::load(bdev::channel& ch, load_report& rep,
                                             std::string* why) {
    if (buf_.size() < g_.md_area_bytes) buf_ = io_buffer(g_.md_area_bytes);
    std::optional<pool_meta> got[2];
    for (unsigned a = 0; a < 2; ++a) {
        int rc = co_await read_bytes(dev_, ch, g_.area_offset(a), buf_.span());
        if (rc != 0) {
            if (why) *why = "cannot read metadata area " + std::to_string(a);
            co_return error{-rc};
        }
        std::string err;
        auto m = decode_metadata(buf_.span(), g_, &err);
        if (m)
            got[a] = std::move(m.value());
        else
            rep.area_error[a] = std::move(err);
    }
    if (!got[0] && !got[1]) {
        if (why)
            *why = "metadata corrupt: area 0 (offset " + std::to_string(g_.area_offset(0)) +
                   "): " + rep.area_error[0] + "; area 1 (offset " +
                   std::to_string(g_.area_offset(1)) + "): " + rep.area_error[1];
        co_return error{EUCLEAN};
    }
    unsigned pick = !got[0] ? 1 : !got[1] ? 0 : got[1]->seq > got[0]->seq ? 1 : 0;
    rep.chosen = pick;
    rep.needs_repair = !got[0] || !got[1] || got[0]->seq != got[1]->seq;
    for (unsigned a = 0; a < 2; ++a)
        if (!rep.area_error[a].empty())
            spdlog::warn("pool {}: metadata area {} unusable ({}); using area {} (seq {})", g_.name,
                         a, rep.area_error[a], pick, got[pick]->seq);
    seq_ = got[pick]->seq;
    co_return std::move(*got[pick]);
}

task<int> metadata_store::commit(bdev::channel& ch, std::span<const volume_meta* const> vols) {
    if (buf_.size() < g_.md_area_bytes) buf_ = io_buffer(g_.md_area_bytes);
    uint64_t seq = seq_ + 1;
    auto n = encode_metadata(seq, vols, g_, buf_.span());
    if (!n) co_return -n.err().code;
    // From here the sequence number is spent even on failure, so a later
    // commit never reuses a number that may be on the disk.
    seq_ = seq;
    auto bytes = buf_.span().first(n.value());
    int rc = co_await write_bytes(dev_, ch, g_.area_offset(seq % 2), bytes, /*fua=*/true);
    if (rc == 0) rc = co_await write_bytes(dev_, ch, g_.area_offset((seq + 1) % 2), bytes, true);
    co_return rc;
}

}  // namespace weft::pool
