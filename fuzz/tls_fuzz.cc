// Fuzzes the TLS PSK handling: the key parser (a key file), the identity
// parser, and the target's key lookup for the identity a host sends in its
// ClientHello (nvmf::target::find_tls_psk: parse, find the host's key,
// derive, compare digests). Nothing may crash, leak or read out of bounds; a
// parsed key or identity formats back to its text; a key is found only for
// an identity that names the configured host and is what derivation gives.
//
// Input: byte 0 picks the mode, the rest is the text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/tls_psk.h"
#include "nvmf/target.h"

namespace {

using namespace weft;

const std::string hostnqn = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-0000000000f1";
// libnvme's test key (test/psk.c).
constexpr const char* fixed_key =
    "NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:";

nvmf::target& the_target() {
    static nvmf::target* t = [] {
        auto* t = new nvmf::target();
        // A fixed key, so that a v1 identity in the corpus (its digest)
        // stays one that the lookup accepts from run to run.
        t->set_host_tls_key(hostnqn, std::make_shared<const auth::tls_key>(
                                         auth::parse_tls_key(fixed_key, nullptr).value()));
        return t;
    }();
    return *t;
}

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 3) {
        case 0: {
            auto k = auth::parse_tls_key(text, nullptr);
            if (!k) break;
            check(k->key.size() == 32 || k->key.size() == 48);
            auto again = auth::parse_tls_key(auth::format_tls_key(*k).view(), nullptr);
            check(again && again->transform == k->transform && again->key == k->key);
            break;
        }
        case 1: {
            auto id = auth::parse_identity(text);
            if (!id) break;
            check(auth::format_identity(*id) == text);
            break;
        }
        case 2: {
            auto psk = the_target().find_tls_psk(text);
            if (!psk) break;
            auto id = auth::parse_identity(text);
            check(id && id->hostnqn == hostnqn && psk->identity == text &&
                  psk->psk.size() == auth::hash_length(psk->hash));
            break;
        }
    }
    return 0;
}
