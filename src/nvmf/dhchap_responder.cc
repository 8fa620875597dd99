#include "nvmf/dhchap_responder.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "nvme/status.h"

namespace weft::nvmf {

namespace sc = nvme::sc;
using nvme::auth::failure;
using nvme::auth::message;

const std::vector<auth::hash_id>& host_auth::default_digests() {
    static const std::vector<auth::hash_id> d{auth::hash_id::sha256, auth::hash_id::sha384,
                                              auth::hash_id::sha512};
    return d;
}

const std::vector<auth::dh_group>& host_auth::default_dhgroups() {
    // A DH exchange gives each connection a fresh secret (and is what secure
    // channel concatenation needs); the smallest group costs ~1 ms per queue.
    static const std::vector<auth::dh_group> d{auth::dh_group::ffdhe2048, auth::dh_group::ffdhe3072,
                                               auth::dh_group::ffdhe4096, auth::dh_group::ffdhe6144,
                                               auth::dh_group::ffdhe8192, auth::dh_group::null};
    return d;
}

namespace {

uint16_t le16(const uint8_t* p) {
    return uint16_t(p[0] | p[1] << 8);
}

}  // namespace

dhchap_responder::dhchap_responder(config_source source, std::string hostnqn, std::string subnqn,
                                   uint16_t qid, channel ch, psk_sink on_psk)
    : source_(std::move(source)),
      hostnqn_(std::move(hostnqn)),
      subnqn_(std::move(subnqn)),
      qid_(qid),
      channel_(ch),
      on_psk_(std::move(on_psk)) {}

void dhchap_responder::succeed() {
    if (sc_c_ != nvme::auth::sc_c_none) {
        // The TLS PSK: HMAC(g^xy, C1 || C2) (an HMAC key longer than the
        // hash's block is hashed first: KS = H(g^xy), as the spec has it).
        auto psk = auth::generated_psk(hash_, {session_key_.data(), session_key_.size()},
                                       {c1_.data(), c1_.size()}, {c2_.data(), c2_.size()});
        auto d = auth::derive_generated_tls_psk(hash_, {psk.data(), psk.size()}, hostnqn_, subnqn_);
        if (!d) {
            // negotiate() allowed only the hashes a PSK digest has.
            spdlog::error("{}: secure channel concatenation on {}: no TLS PSK for {}", hostnqn_,
                          subnqn_, auth::hash_name(hash_));
            return end_failed();
        }
        if (!on_psk_ || !on_psk_(cfg_, std::move(d.value()))) {
            spdlog::warn(
                "{}: secure channel concatenation on {}: the host's secret changed "
                "during the exchange; no TLS PSK kept",
                hostnqn_, subnqn_);
            return end_failed();
        }
    }
    done_sc_c_ = sc_c_;
    authenticated_ = true;
    ++successes_;
}

std::string dhchap_responder::describe() const {
    return fmt::format("{}, {}{}", auth::hash_name(hash_), auth::dh_group_name(group_),
                       bidirectional_ ? ", bidirectional" : "");
}

void dhchap_responder::execute(request& r) {
    nvme::auth::auth_command cmd;
    std::memcpy(&cmd, &r.cmd, sizeof cmd);
    if (cmd.secp != nvme::auth::secp_dhchap || cmd.spsp0 != nvme::auth::spsp_dhchap ||
        cmd.spsp1 != nvme::auth::spsp_dhchap || cmd.length == 0)
        return r.set(sc::invalid_field);
    if (cmd.length != r.data_len) return r.set(sc::sgl_data_length_invalid);
    if (cmd.fctype == uint8_t(nvme::fabrics_type::authentication_send)) {
        send({reinterpret_cast<const uint8_t*>(r.data.data()), r.data_len});
        return r.set(sc::success);
    }
    receive(r);
}

void dhchap_responder::reset() {
    c1_.clear();
    c2_.clear();
    session_key_.clear();
    dh_.reset();
    s1_ = s2_ = 0;
    sc_c_ = 0;
}

void dhchap_responder::fail_next(failure why) {
    why_ = why;
    step_ = step::failure1;
}

void dhchap_responder::end_failed() {
    step_ = step::done;
    authenticated_ = false;
    failed_ = true;
    reset();
}

void dhchap_responder::fail_now(failure why) {
    why_ = why;
    end_failed();
    spdlog::warn("{}: authentication on queue {} of {} ended: message out of order ({})", hostnqn_,
                 qid_, subnqn_, unsigned(why));
}

void dhchap_responder::send(std::span<const uint8_t> p) {
    if (failed_) return;
    if (p.size() < sizeof(nvme::auth::failure_message)) return fail_now(failure::incorrect_payload);
    // Owed a Failure1: the host reads it before anything else.
    if (step_ == step::failure1) return fail_now(failure::incorrect_message);
    uint8_t type = p[0], id = p[1];
    if (type == uint8_t(nvme::auth::auth_type::common) && id == uint8_t(message::negotiate)) {
        // A new transaction (the first, or re-authentication), with the
        // host's secrets as they are now.
        reset();
        bidirectional_ = false;
        t_id_ = le16(p.data() + 4);  // for a Failure1 even to a short Negotiate
        cfg_ = source_ ? source_() : nullptr;
        failure f = negotiate(p);
        if (f == failure{}) {
            step_ = step::challenge;
        } else {
            fail_next(f);
        }
        return;
    }
    // Failure2 is a common message (Linux sends it so); take either type.
    if (id == uint8_t(message::failure2)) {
        // The host refused us (e.g. our R2 did not check out).
        spdlog::warn("{}: authentication on queue {} of {}: the host ended it (Failure2)", hostnqn_,
                     qid_, subnqn_);
        return end_failed();
    }
    if (type != uint8_t(nvme::auth::auth_type::dhchap)) return fail_now(failure::incorrect_message);
    bool expected = (id == uint8_t(message::reply) && step_ == step::reply) ||
                    (id == uint8_t(message::success2) && step_ == step::success2);
    if (!expected) return fail_now(failure::incorrect_message);
    if (le16(p.data() + 4) != t_id_) return fail_next(failure::incorrect_payload);
    if (id == uint8_t(message::reply)) {
        failure f = reply(p);
        if (f == failure{}) {
            step_ = step::success1;
        } else {
            fail_next(f);
        }
        return;
    }
    // Success2: the host took our R2.
    succeed();
    step_ = step::done;
    reset();
}

failure dhchap_responder::negotiate(std::span<const uint8_t> p) {
    if (!cfg_) return failure::not_usable;
    nvme::auth::negotiate_header h;
    if (p.size() < sizeof h + sizeof(nvme::auth::protocol_descriptor))
        return failure::incorrect_payload;
    std::memcpy(&h, p.data(), sizeof h);
    // Secure channel concatenation: on the admin queue only, NEWTLSPSK on a
    // plain connection of a listener that allows TLS, REPLACETLSPSK on a TLS
    // one (as Linux nvmet).
    if (h.sc_c != nvme::auth::sc_c_none) {
        bool ok =
            qid_ == 0 &&
            ((h.sc_c == nvme::auth::sc_c_newtlspsk && !channel_.tls && channel_.tls_possible) ||
             (h.sc_c == nvme::auth::sc_c_replacetlspsk && channel_.tls));
        if (!ok) {
            spdlog::warn(
                "{}: authentication on queue {} of {} refused: secure channel "
                "concatenation {} is not possible on this {} connection",
                hostnqn_, qid_, subnqn_, unsigned(h.sc_c), channel_.tls ? "TLS" : "plain");
            return failure::concat_mismatch;
        }
    }
    sc_c_ = h.sc_c;
    if (h.napd == 0 ||
        sizeof h + size_t(h.napd) * sizeof(nvme::auth::protocol_descriptor) > p.size())
        return failure::incorrect_payload;
    const nvme::auth::protocol_descriptor* d = nullptr;
    for (unsigned i = 0; i < h.napd; ++i) {
        auto* di = reinterpret_cast<const nvme::auth::protocol_descriptor*>(
            p.data() + sizeof h + i * sizeof(nvme::auth::protocol_descriptor));
        if (di->authid == nvme::auth::authid_dhchap) {
            d = di;
            break;
        }
    }
    if (!d) return failure::not_usable;
    if (d->halen > nvme::auth::max_hash_ids || d->dhlen > nvme::auth::max_dh_ids)
        return failure::incorrect_payload;
    auto offered_hash = [&](auth::hash_id want) {
        return std::find(d->idlist, d->idlist + d->halen, uint8_t(want)) != d->idlist + d->halen;
    };
    auto offered_group = [&](auth::dh_group want) {
        const uint8_t* g = d->idlist + nvme::auth::max_hash_ids;
        return std::find(g, g + d->dhlen, uint8_t(want)) != g + d->dhlen;
    };
    const auto& digests = cfg_->digests.empty() ? host_auth::default_digests() : cfg_->digests;
    const auto& groups = cfg_->dhgroups.empty() ? host_auth::default_dhgroups() : cfg_->dhgroups;
    // A generated PSK needs a DH secret and a hash its digest is defined for.
    bool concat = sc_c_ != nvme::auth::sc_c_none;
    auto hi = std::find_if(digests.begin(), digests.end(), [&](auth::hash_id want) {
        return offered_hash(want) && (!concat || want != auth::hash_id::sha512);
    });
    if (hi == digests.end()) return failure::hash_unusable;
    auto gi = std::find_if(groups.begin(), groups.end(), [&](auth::dh_group want) {
        return offered_group(want) && (!concat || want != auth::dh_group::null);
    });
    if (gi == groups.end()) return failure::dhgroup_unusable;
    hash_ = *hi;
    group_ = *gi;
    return failure{};
}

failure dhchap_responder::reply(std::span<const uint8_t> p) {
    if (!cfg_) return failure::not_usable;
    nvme::auth::reply_header h;
    if (p.size() < sizeof h) return failure::incorrect_payload;
    std::memcpy(&h, p.data(), sizeof h);
    size_t hl = auth::hash_length(hash_);
    if (h.hl != hl || sizeof h + 2 * hl + h.dhvlen > p.size()) return failure::incorrect_payload;
    const uint8_t* rval = p.data() + sizeof h;
    if (group_ == auth::dh_group::null) {
        if (h.dhvlen != 0) return failure::incorrect_payload;
    } else {
        if (!dh_ || h.dhvlen != auth::dh_value_length(group_)) return failure::incorrect_payload;
        auto s = dh_->shared_secret({rval + 2 * hl, h.dhvlen});
        if (!s) return failure::dhgroup_unusable;
        session_key_ = std::move(s.value());
    }
    auto expect = auth::dhchap_response(
        hash_, cfg_->key, auth::role::host, hostnqn_, subnqn_, {c1_.data(), c1_.size()},
        {session_key_.data(), session_key_.size()}, s1_, t_id_, sc_c_);
    if (!auth::same_secret({rval, hl}, {expect.data(), expect.size()})) {
        spdlog::warn(
            "{}: authentication on queue {} of {} failed: wrong response (a wrong secret?)",
            hostnqn_, qid_, subnqn_);
        return failure::failed;
    }
    // SEQNUM 0 with a challenge asks for no controller authentication: the
    // challenge only feeds a generated TLS PSK, which cannot be made without.
    if (h.cvalid) c2_.assign(rval + hl, rval + 2 * hl);
    if (sc_c_ != nvme::auth::sc_c_none && !h.cvalid) return failure::incorrect_payload;
    if (h.cvalid && h.seqnum != 0) {
        bidirectional_ = true;
        s2_ = h.seqnum;
    } else {
        succeed();
        if (failed_) return failure::failed;
    }
    return failure{};
}

void dhchap_responder::receive(request& r) {
    std::span<uint8_t> out(reinterpret_cast<uint8_t*>(r.data.data()), r.data_len);
    std::fill(out.begin(), out.end(), 0);
    auto put_failure1 = [&] {
        nvme::auth::failure_message m{};
        m.auth_type = uint8_t(nvme::auth::auth_type::common);
        m.auth_id = uint8_t(message::failure1);
        m.t_id = t_id_;
        m.rescode = nvme::auth::failure_reason_failed;
        m.rescode_exp = uint8_t(why_);
        if (out.size() < sizeof m) return r.set(sc::invalid_field);
        std::memcpy(out.data(), &m, sizeof m);
        if (!failed_)
            spdlog::warn("{}: authentication on queue {} of {} failed (reason {})", hostnqn_, qid_,
                         subnqn_, unsigned(why_));
        end_failed();
        r.set(sc::success);
    };
    switch (step_) {
        case step::challenge: {
            size_t hl = auth::hash_length(hash_);
            size_t dhvlen = auth::dh_value_length(group_);
            if (out.size() < sizeof(nvme::auth::challenge_header) + hl + dhvlen)
                return r.set(sc::invalid_field);
            if (group_ != auth::dh_group::null) {
                auto k = auth::dh_key::generate(group_);
                if (!k) {
                    fail_next(failure::dhgroup_unusable);
                    return put_failure1();
                }
                dh_ = std::move(k.value());
            }
            c1_.resize(hl);
            auth::random_bytes({c1_.data(), c1_.size()});
            do {
                auth::random_bytes({reinterpret_cast<uint8_t*>(&s1_), sizeof s1_});
            } while (s1_ == 0);
            nvme::auth::challenge_header h{};
            h.auth_type = uint8_t(nvme::auth::auth_type::dhchap);
            h.auth_id = uint8_t(message::challenge);
            h.t_id = t_id_;
            h.hl = uint8_t(hl);
            h.hashid = uint8_t(hash_);
            h.dhgid = uint8_t(group_);
            h.dhvlen = uint16_t(dhvlen);
            h.seqnum = s1_;
            std::memcpy(out.data(), &h, sizeof h);
            std::memcpy(out.data() + sizeof h, c1_.data(), hl);
            if (dh_) std::memcpy(out.data() + sizeof h + hl, dh_->public_value().data(), dhvlen);
            step_ = step::reply;
            return r.set(sc::success);
        }
        case step::success1: {
            size_t hl = auth::hash_length(hash_);
            nvme::auth::success1_header h{};
            if (out.size() < sizeof h + (bidirectional_ ? hl : 0)) return r.set(sc::invalid_field);
            h.auth_type = uint8_t(nvme::auth::auth_type::dhchap);
            h.auth_id = uint8_t(message::success1);
            h.t_id = t_id_;
            h.hl = uint8_t(hl);
            if (bidirectional_) {
                if (!cfg_ || !cfg_->ctrl_key) {
                    spdlog::warn(
                        "{}: authentication on queue {} of {} failed: the host asked the "
                        "controller to authenticate, and it has no controller secret for this host",
                        hostnqn_, qid_, subnqn_);
                    fail_next(failure::failed);
                    return put_failure1();
                }
                auto r2 =
                    auth::dhchap_response(hash_, *cfg_->ctrl_key, auth::role::controller, subnqn_,
                                          hostnqn_, {c2_.data(), c2_.size()},
                                          {session_key_.data(), session_key_.size()}, s2_, t_id_);
                h.rvalid = 1;
                std::memcpy(out.data() + sizeof h, r2.data(), hl);
                step_ = step::success2;
            } else {
                step_ = step::done;
                reset();
            }
            std::memcpy(out.data(), &h, sizeof h);
            return r.set(sc::success);
        }
        case step::failure1:
            return put_failure1();
        default:
            // A Receive with nothing to receive.
            why_ = failure::incorrect_message;
            return put_failure1();
    }
}

}  // namespace weft::nvmf
