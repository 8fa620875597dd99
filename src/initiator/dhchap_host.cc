#include "initiator/dhchap_host.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace weft::initiator {

using nvme::auth::failure;
using nvme::auth::message;

namespace {

result<std::vector<uint8_t>> refuse(std::string* why, std::string s, int code = EPROTO) {
    if (why) *why = std::move(s);
    return error{code};
}

// A controller's Failure1: its reason as an error (see dhchap_host.h) and a
// sentence.
error failure1_error(std::span<const uint8_t> msg, std::string* why) {
    uint8_t r = msg[7];
    int code = r == uint8_t(failure::failed) ? EACCES
               : r >= uint8_t(failure::not_usable) && r <= uint8_t(failure::dhgroup_unusable)
                   ? ENOPROTOOPT
                   : EPROTO;
    static const char* const names[] = {"?",
                                        "the response was wrong",
                                        "authentication is not usable with this host",
                                        "secure channel concatenation mismatch",
                                        "no hash function in common",
                                        "no DH group in common",
                                        "incorrect payload",
                                        "incorrect message"};
    if (why)
        *why = fmt::format("the controller refused the authentication (reason {}: {})", unsigned(r),
                           names[r < 8 ? r : 0]);
    return error{code};
}

}  // namespace

dhchap_host::dhchap_host(dhchap_host_options opt, std::string hostnqn, std::string subnqn,
                         uint16_t t_id)
    : opt_(std::move(opt)), hostnqn_(std::move(hostnqn)), subnqn_(std::move(subnqn)), t_id_(t_id) {
    if (opt_.digests.empty())
        opt_.digests = {auth::hash_id::sha256, auth::hash_id::sha384, auth::hash_id::sha512};
    if (opt_.dhgroups.empty())
        for (uint8_t g = 0; g <= 5; ++g) opt_.dhgroups.push_back(auth::dh_group(g));
    if (opt_.sc_c != nvme::auth::sc_c_none) {
        // A generated PSK needs a DH secret and a hash its digest has.
        std::erase(opt_.digests, auth::hash_id::sha512);
        std::erase(opt_.dhgroups, auth::dh_group::null);
    }
}

std::vector<uint8_t> dhchap_host::negotiate() const {
    nvme::auth::negotiate_header h{};
    h.auth_type = uint8_t(nvme::auth::auth_type::common);
    h.auth_id = uint8_t(message::negotiate);
    h.t_id = t_id_;
    h.sc_c = opt_.sc_c;
    h.napd = 1;
    nvme::auth::protocol_descriptor d{};
    d.authid = nvme::auth::authid_dhchap;
    d.halen = uint8_t(std::min<size_t>(opt_.digests.size(), nvme::auth::max_hash_ids));
    d.dhlen = uint8_t(std::min<size_t>(opt_.dhgroups.size(), nvme::auth::max_dh_ids));
    for (unsigned i = 0; i < d.halen; ++i) d.idlist[i] = uint8_t(opt_.digests[i]);
    for (unsigned i = 0; i < d.dhlen; ++i)
        d.idlist[nvme::auth::max_hash_ids + i] = uint8_t(opt_.dhgroups[i]);
    std::vector<uint8_t> out(sizeof h + sizeof d);
    std::memcpy(out.data(), &h, sizeof h);
    std::memcpy(out.data() + sizeof h, &d, sizeof d);
    return out;
}

result<std::vector<uint8_t>> dhchap_host::reply(std::span<const uint8_t> msg, std::string* why) {
    if (msg.size() >= sizeof(nvme::auth::failure_message) && msg[1] == uint8_t(message::failure1))
        return failure1_error(msg, why);
    nvme::auth::challenge_header h;
    if (msg.size() < sizeof h) return refuse(why, "short DH-HMAC-CHAP challenge");
    std::memcpy(&h, msg.data(), sizeof h);
    if (h.auth_type != uint8_t(nvme::auth::auth_type::dhchap) ||
        h.auth_id != uint8_t(message::challenge) || h.t_id != t_id_)
        return refuse(why, "not the DH-HMAC-CHAP challenge of this transaction");
    if (!auth::known_hash(h.hashid) || std::find(opt_.digests.begin(), opt_.digests.end(),
                                                 auth::hash_id(h.hashid)) == opt_.digests.end())
        return refuse(why, "the controller chose a hash function that was not offered");
    if (!auth::known_dh_group(h.dhgid) || std::find(opt_.dhgroups.begin(), opt_.dhgroups.end(),
                                                    auth::dh_group(h.dhgid)) == opt_.dhgroups.end())
        return refuse(why, "the controller chose a DH group that was not offered");
    hash_ = auth::hash_id(h.hashid);
    group_ = auth::dh_group(h.dhgid);
    size_t hl = auth::hash_length(hash_);
    size_t dhvlen = auth::dh_value_length(group_);
    if (h.hl != hl || h.dhvlen != dhvlen || msg.size() < sizeof h + hl + dhvlen)
        return refuse(why, "malformed DH-HMAC-CHAP challenge");
    std::span<const uint8_t> c1 = msg.subspan(sizeof h, hl);
    std::optional<auth::dh_key> dh;
    if (group_ != auth::dh_group::null) {
        auto k = auth::dh_key::generate(group_);
        if (!k) return refuse(why, "no DH key for the group the controller chose");
        auto s = k->shared_secret(msg.subspan(sizeof h + hl, dhvlen));
        if (!s) return refuse(why, "the controller's DH value is not valid for its group");
        session_key_ = std::move(s.value());
        dh = std::move(k.value());
    }
    auto r1 = auth::dhchap_response(hash_, opt_.key, auth::role::host, hostnqn_, subnqn_, c1,
                                    {session_key_.data(), session_key_.size()}, h.seqnum, t_id_,
                                    opt_.sc_c);
    c1_.assign(c1.begin(), c1.end());
    bool concat = opt_.sc_c != nvme::auth::sc_c_none;
    nvme::auth::reply_header rh{};
    rh.auth_type = uint8_t(nvme::auth::auth_type::dhchap);
    rh.auth_id = uint8_t(message::reply);
    rh.t_id = t_id_;
    rh.hl = uint8_t(hl);
    rh.dhvlen = uint16_t(dhvlen);
    if (opt_.ctrl_key || concat) {
        // C2 feeds the generated PSK; S2 = 0 asks no R2 of the controller.
        c2_.resize(hl);
        auth::random_bytes({c2_.data(), c2_.size()});
        while (opt_.ctrl_key && s2_ == 0)
            auth::random_bytes({reinterpret_cast<uint8_t*>(&s2_), sizeof s2_});
        rh.cvalid = 1;
        rh.seqnum = s2_;
    }
    std::vector<uint8_t> out(sizeof rh + 2 * hl + dhvlen);
    std::memcpy(out.data(), &rh, sizeof rh);
    std::memcpy(out.data() + sizeof rh, r1.data(), hl);
    if (rh.cvalid) std::memcpy(out.data() + sizeof rh + hl, c2_.data(), hl);
    if (dh) std::memcpy(out.data() + sizeof rh + 2 * hl, dh->public_value().data(), dhvlen);
    return out;
}

result<bool> dhchap_host::success1(std::span<const uint8_t> msg, std::string* why) {
    auto bad = [&](std::string s, int code = EPROTO) -> result<bool> {
        if (why) *why = std::move(s);
        return error{code};
    };
    if (msg.size() >= sizeof(nvme::auth::failure_message) && msg[1] == uint8_t(message::failure1))
        return failure1_error(msg, why);
    // Only after reply() has answered a challenge (the fuzzer's find).
    if (hash_ == auth::hash_id::none)
        return bad("a DH-HMAC-CHAP success message before any challenge");
    nvme::auth::success1_header h;
    if (msg.size() < sizeof h) return bad("short DH-HMAC-CHAP success message");
    std::memcpy(&h, msg.data(), sizeof h);
    size_t hl = auth::hash_length(hash_);
    if (h.auth_type != uint8_t(nvme::auth::auth_type::dhchap) ||
        h.auth_id != uint8_t(message::success1) || h.t_id != t_id_ || h.hl != hl)
        return bad("not the DH-HMAC-CHAP success message of this transaction");
    if (!opt_.ctrl_key) {
        succeeded_ = true;
        return false;
    }
    if (!h.rvalid || msg.size() < sizeof h + hl)
        return bad("the controller did not authenticate itself", EACCES);
    auto r2 = auth::dhchap_response(hash_, *opt_.ctrl_key, auth::role::controller, subnqn_,
                                    hostnqn_, {c2_.data(), c2_.size()},
                                    {session_key_.data(), session_key_.size()}, s2_, t_id_);
    if (!auth::same_secret(msg.subspan(sizeof h, hl), {r2.data(), r2.size()}))
        return bad("the controller's response is wrong: it does not hold the controller secret",
                   EACCES);
    succeeded_ = true;
    return true;
}

result<auth::derived_psk> dhchap_host::tls_psk() const {
    if (!succeeded_ || opt_.sc_c == nvme::auth::sc_c_none) return error{EINVAL};
    auto psk = auth::generated_psk(hash_, {session_key_.data(), session_key_.size()},
                                   {c1_.data(), c1_.size()}, {c2_.data(), c2_.size()});
    return auth::derive_generated_tls_psk(hash_, {psk.data(), psk.size()}, hostnqn_, subnqn_);
}

std::vector<uint8_t> dhchap_host::success2() const {
    nvme::auth::success2_message m{};
    m.auth_type = uint8_t(nvme::auth::auth_type::dhchap);
    m.auth_id = uint8_t(message::success2);
    m.t_id = t_id_;
    std::vector<uint8_t> out(sizeof m);
    std::memcpy(out.data(), &m, sizeof m);
    return out;
}

std::vector<uint8_t> dhchap_host::failure2(failure why) const {
    nvme::auth::failure_message m{};
    m.auth_type = uint8_t(nvme::auth::auth_type::common);  // as Failure1
    m.auth_id = uint8_t(message::failure2);
    m.t_id = t_id_;
    m.rescode = nvme::auth::failure_reason_failed;
    m.rescode_exp = uint8_t(why);
    std::vector<uint8_t> out(sizeof m);
    std::memcpy(out.data(), &m, sizeof m);
    return out;
}

}  // namespace weft::initiator
