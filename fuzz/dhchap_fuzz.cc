// Fuzzes DH-HMAC-CHAP: the secret parser (a key file), the controller's
// transaction (nvmf/dhchap_responder.h) fed arbitrary Authentication Send/
// Receive sequences, an honest host's transaction with the bytes on the
// wire corrupted, and the host's parsers of the controller's messages.
// Nothing may crash, leak, read out of bounds, or end authenticated unless
// the host's real response went through untouched.
//
// Input: byte 0 picks the mode (see below), the rest drives it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "auth/dhchap_key.h"
#include "initiator/dhchap_host.h"
#include "nvmf/dhchap_responder.h"
#include "runtime/buffer_pool.h"

namespace {

using namespace weft;

const std::string hostnqn = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001";
const std::string subnqn = "nqn.2026-11.io.weft:fuzz";

struct keys {
    auth::dhchap_key host = auth::generate_dhchap_key(auth::hash_id::sha256).value();
    auth::dhchap_key ctrl = auth::generate_dhchap_key(auth::hash_id::none).value();
};
keys& the_keys() {
    static keys k;
    return k;
}

std::shared_ptr<nvmf::host_auth> config(bool with_dh) {
    auto a = std::make_shared<nvmf::host_auth>();
    a->key = the_keys().host;
    a->ctrl_key = the_keys().ctrl;
    // The null group keeps most runs fast; ffdhe2048 covers the DH path.
    a->dhgroups =
        with_dh ? std::vector{auth::dh_group::ffdhe2048} : std::vector{auth::dh_group::null};
    return a;
}

nvmf::request command(bool send, std::span<const uint8_t> data, size_t len) {
    nvmf::request r;
    r.cmd = nvme::auth::make_command(send, uint32_t(len));
    if (len) {
        r.data = buffer_pool::local().get(len);
        r.data_len = uint32_t(len);
        std::memset(r.data.data(), 0, len);
        if (!data.empty()) std::memcpy(r.data.data(), data.data(), std::min(len, data.size()));
    }
    return r;
}

std::vector<uint8_t> exchange(nvmf::dhchap_responder& resp, bool send,
                              std::span<const uint8_t> data, size_t len) {
    auto r = command(send, data, len);
    resp.execute(r);
    auto* p = reinterpret_cast<const uint8_t*>(r.data.data());
    return send ? std::vector<uint8_t>{} : std::vector<uint8_t>(p, p + r.data_len);
}

// Mode 1: ops of [flags][len lo][len hi][payload...]; flags bit 0: Send.
void raw_sequence(std::span<const uint8_t> in) {
    auto cfg = config(false);
    // A plain queue of a listener that allows TLS: concatenation can start.
    nvmf::dhchap_responder resp([cfg] { return cfg; }, hostnqn, subnqn, 0, {true, false});
    while (in.size() >= 3) {
        bool send = in[0] & 1;
        size_t len = (in[1] | in[2] << 8) % 2048;
        in = in.subspan(3);
        size_t take = std::min(len, in.size());
        exchange(resp, send, in.subspan(0, take), len);
        in = in.subspan(take);
    }
    // Random bytes never carry a valid response.
    if (resp.authenticated()) std::abort();
}

// Mode 2: an honest transaction; the input XORs the messages on the wire.
// With secure channel concatenation (and so a DH group), an untouched run
// must give both sides the same TLS PSK.
void corrupted_transaction(std::span<const uint8_t> in) {
    bool concat = !in.empty() && (in[0] & 4);
    bool dh = concat || (!in.empty() && (in[0] & 1));
    bool bidi = !in.empty() && (in[0] & 2);
    if (!in.empty()) in = in.subspan(1);
    size_t pos = 0;
    bool touched = false;
    auto corrupt = [&](std::vector<uint8_t>& m) {
        for (auto& b : m) {
            if (pos >= in.size()) return;
            uint8_t x = in[pos++];
            touched |= x != 0;
            b ^= x;
        }
    };
    auto cfg = config(dh);
    std::vector<auth::derived_psk> made;
    nvmf::dhchap_responder resp(
        [cfg] { return cfg; }, hostnqn, subnqn, 0, {true, false},
        [&](const std::shared_ptr<const nvmf::host_auth>&, auth::derived_psk p) {
            made.push_back(std::move(p));
            return true;
        });
    initiator::dhchap_host host({the_keys().host,
                                 bidi ? std::optional(the_keys().ctrl) : std::nullopt,
                                 {},
                                 {},
                                 concat ? nvme::auth::sc_c_newtlspsk : uint8_t(0)},
                                hostnqn, subnqn, 3);
    auto neg = host.negotiate();
    corrupt(neg);
    exchange(resp, true, neg, neg.size());
    auto challenge = exchange(resp, false, {}, 4096);
    corrupt(challenge);
    auto reply = host.reply(challenge, nullptr);
    if (!reply) return;
    corrupt(*reply);
    exchange(resp, true, *reply, reply->size());
    auto s1 = exchange(resp, false, {}, 4096);
    corrupt(s1);
    auto more = host.success1(s1, nullptr);
    if (more && *more) {
        auto s2 = host.success2();
        corrupt(s2);
        exchange(resp, true, s2, s2.size());
    }
    if (!touched && !resp.authenticated()) std::abort();  // the honest run must pass
    if (!touched && concat) {
        auto mine = host.tls_psk();
        if (!mine || made.size() != 1 || made[0].identity != mine->identity ||
            made[0].psk != mine->psk)
            std::abort();
    }
    if (!concat && !made.empty()) std::abort();  // no key without concatenation
}

// Mode 3: the host's parsers against arbitrary controller messages.
void host_parsers(std::span<const uint8_t> in) {
    initiator::dhchap_host host({the_keys().host, the_keys().ctrl, {}, {}}, hostnqn, subnqn, 0);
    size_t half = in.size() / 2;
    (void)host.reply(in.subspan(0, half), nullptr);
    (void)host.success1(in.subspan(half), nullptr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::span<const uint8_t> in(data + 1, size - 1);
    switch (data[0] % 4) {
        case 0: {
            std::string text(reinterpret_cast<const char*>(in.data()), in.size());
            auto k = auth::parse_dhchap_key(text, nullptr);
            // What parses formats back to the same key.
            if (k &&
                auth::parse_dhchap_key(auth::format_dhchap_key(*k).view(), nullptr)->key != k->key)
                std::abort();
            break;
        }
        case 1:
            raw_sequence(in);
            break;
        case 2:
            corrupted_transaction(in);
            break;
        case 3:
            host_parsers(in);
            break;
    }
    return 0;
}
