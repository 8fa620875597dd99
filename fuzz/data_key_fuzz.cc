// Fuzzes the key texts of encryption at rest (auth/data_key.h): a KEK file's
// text and a wrapped data key as stored in engine state or the control
// plane's store. Nothing may crash or read out of bounds; a wrapped key
// unwraps only when it is exactly one this KEK wrapped (a changed text is
// refused), and what unwraps is 64 bytes.
//
// Input: byte 0 picks the mode: even, the rest is a KEK text; odd, the rest
// is a wrapped key tried against a fixed KEK (the real wrapping of a fixed
// data key with that KEK is in the corpus, so mutations start from it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/data_key.h"
#include "auth/key_text.h"

namespace {

using namespace weft;

const auth::kek& fixed_kek() {
    // 32 bytes 0x01..0x20 (fixed: the corpus holds keys this KEK wrapped).
    static auth::kek k = [] {
        auth::secret_bytes raw(auth::kek_bytes);
        for (size_t i = 0; i < raw.size(); ++i) raw[i] = uint8_t(i + 1);
        auto parsed = auth::parse_kek(auth::format_key_text("weft-kek-1:", 0, raw).view(), nullptr);
        if (!parsed) std::abort();
        return std::move(*parsed);
    }();
    return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    std::string why;
    if (data[0] % 2 == 0) {
        auto k = auth::parse_kek(text, &why);
        if (k && (k->key.size() != auth::kek_bytes || k->id.size() != 16)) std::abort();
        return 0;
    }
    (void)auth::wrapped_key_id(text, &why);
    auto dek = auth::unwrap_data_key({&fixed_kek(), 1}, text, &why);
    if (!dek) return 0;
    if (dek->size() != auth::data_key_bytes) std::abort();
    // What unwraps wraps and unwraps again to the same key.
    auto again =
        auth::unwrap_data_key({&fixed_kek(), 1}, auth::wrap_data_key(fixed_kek(), *dek), &why);
    if (!again || *again != *dek) std::abort();
    return 0;
}
