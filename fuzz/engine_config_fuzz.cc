// The engine's configuration and persisted state (engine-state.json, read
// from disk at start): parse_config must refuse bad input with a sentence,
// never crash, and what it accepts must survive to_json_text and back.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "engine/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    std::string why;
    auto c = weft::engine::parse_config(text, &why);
    if (!c) {
        if (why.empty()) std::abort();  // every refusal says why
        return 0;
    }
    std::string once = weft::engine::to_json_text(c.value());
    auto again = weft::engine::parse_config(once, &why);
    if (!again) std::abort();
    if (weft::engine::to_json_text(again.value()) != once) std::abort();
    return 0;
}
