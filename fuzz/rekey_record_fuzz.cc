// Fuzzes a data-key rotation's journal record (bdev/crypto/rekey_record.h),
// read from the engine's data directory after a crash. Nothing may crash or
// read out of bounds, and what parses encodes back to the same bytes (the
// checksum covers every byte, so a changed record is refused).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bdev/crypto/rekey_record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string why;
    auto r = weft::bdev::parse_rekey_record({data, size}, &why);
    if (!r) {
        if (why.empty()) std::abort();
        return 0;
    }
    if (r->digests.size() != r->blocks) std::abort();
    std::string back = weft::bdev::encode(*r);
    if (back.size() != size || std::memcmp(back.data(), data, size) != 0) std::abort();
    return 0;
}
