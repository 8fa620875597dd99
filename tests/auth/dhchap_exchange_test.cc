// A whole DH-HMAC-CHAP transaction between the host's side (initiator/
// dhchap_host.h) and the controller's (nvmf/dhchap_responder.h), through the
// Authentication Send/Receive commands the transport would hand over, and
// the ways a transaction must fail: wrong secrets, messages out of order,
// replayed or truncated, and commands that are not DH-HMAC-CHAP at all.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "initiator/dhchap_host.h"
#include "nvme/status.h"
#include "nvmf/dhchap_responder.h"

using namespace weft;
using weft::auth::dh_group;
using weft::auth::hash_id;
using weft::nvme::auth::failure;

namespace {

const std::string hostnqn = "nqn.2014-08.org.nvmexpress:uuid:0c3c6a28-6c3c-4a46-a52c-0f1bd5a0e1f3";
const std::string subnqn = "nqn.2026-11.io.weft:p0:vol1";

auth::dhchap_key key(hash_id t = hash_id::sha256) {
    return auth::generate_dhchap_key(t).value();
}

nvmf::request command(nvme::fabrics_type t, size_t len, uint8_t secp = nvme::auth::secp_dhchap) {
    nvmf::request r;
    r.cmd = nvme::auth::make_command(t == nvme::fabrics_type::authentication_send, uint32_t(len));
    reinterpret_cast<uint8_t*>(&r.cmd)[offsetof(nvme::auth::auth_command, secp)] = secp;
    if (len) {
        r.data = buffer_pool::local().get(len);
        r.data_len = uint32_t(len);
    }
    return r;
}

// The controller's side of one queue, driven as the transport would.
struct controller_side {
    std::vector<auth::derived_psk> psks;  // generated (secure channel concatenation)
    nvmf::dhchap_responder resp;
    explicit controller_side(std::shared_ptr<const nvmf::host_auth> cfg, uint16_t qid = 0,
                             nvmf::dhchap_channel ch = {})
        : resp([cfg] { return cfg; }, hostnqn, subnqn, qid, ch,
               [this](const std::shared_ptr<const nvmf::host_auth>&, auth::derived_psk p) {
                   psks.push_back(std::move(p));
                   return true;
               }) {}
    nvme::status send(std::span<const uint8_t> msg) {
        auto r = command(nvme::fabrics_type::authentication_send, msg.size());
        std::memcpy(r.data.data(), msg.data(), msg.size());
        resp.execute(r);
        return r.status();
    }
    std::vector<uint8_t> receive(size_t al = 4096) {
        auto r = command(nvme::fabrics_type::authentication_receive, al);
        resp.execute(r);
        EXPECT_TRUE(r.status().ok());
        auto* p = reinterpret_cast<const uint8_t*>(r.data.data());
        return {p, p + al};
    }
};

std::shared_ptr<nvmf::host_auth> target_cfg(const auth::dhchap_key& k,
                                            std::optional<auth::dhchap_key> ck = {}) {
    auto a = std::make_shared<nvmf::host_auth>();
    a->key = k;
    a->ctrl_key = std::move(ck);
    return a;
}

struct outcome {
    bool authenticated = false;
    bool failed = false;
    std::string host_error;
};

// Runs the transaction as Linux's host does; stops at the first refusal.
outcome run(controller_side& c, initiator::dhchap_host& h) {
    outcome o;
    EXPECT_TRUE(c.send(h.negotiate()).ok());
    auto challenge = c.receive();
    auto reply = h.reply(challenge, &o.host_error);
    if (reply) {
        EXPECT_TRUE(c.send(*reply).ok());
        auto s1 = c.receive();
        auto more = h.success1(s1, &o.host_error);
        if (more && *more) {
            EXPECT_TRUE(c.send(h.success2()).ok());
        }
        if (!more && more.err().code == EACCES && s1[1] == uint8_t(nvme::auth::message::success1))
            c.send(h.failure2(failure::failed));
    }
    o.authenticated = c.resp.authenticated();
    o.failed = c.resp.failed();
    return o;
}

}  // namespace

TEST(DhchapExchange, EveryHashAndGroupUnidirectionalAndBidirectional) {
    for (hash_id hf : {hash_id::sha256, hash_id::sha384, hash_id::sha512}) {
        for (dh_group g : {dh_group::null, dh_group::ffdhe2048, dh_group::ffdhe3072,
                           dh_group::ffdhe4096, dh_group::ffdhe6144, dh_group::ffdhe8192}) {
            // Keys with different transforms than the transaction's hash.
            auto hk = key(hash_id::sha512), ck = key(hash_id::none);
            for (bool bidi : {false, true}) {
                auto cfg = target_cfg(hk, ck);
                cfg->digests = {hf};
                cfg->dhgroups = {g};
                controller_side c(cfg);
                initiator::dhchap_host h({hk, bidi ? std::optional(ck) : std::nullopt, {}, {}},
                                         hostnqn, subnqn, 7);
                auto o = run(c, h);
                SCOPED_TRACE(fmt::format("{} {} {}", auth::hash_name(hf), auth::dh_group_name(g),
                                         bidi ? "bidirectional" : "unidirectional"));
                EXPECT_TRUE(o.authenticated) << o.host_error;
                EXPECT_FALSE(o.failed);
                EXPECT_EQ(h.hash(), hf);
                EXPECT_EQ(h.group(), g);
                if (g == dh_group::ffdhe3072 && hf == hash_id::sha384)
                    break;  // enough of the big ones
            }
        }
    }
}

TEST(DhchapExchange, ControllerPrefersItsOwnOrderAmongWhatTheHostOffers) {
    auto hk = key();
    auto cfg = target_cfg(hk);
    cfg->digests = {hash_id::sha512, hash_id::sha256};
    cfg->dhgroups = {dh_group::ffdhe4096, dh_group::null};
    controller_side c(cfg);
    // The host does not offer ffdhe4096: the next choice is null.
    initiator::dhchap_host h({hk, {}, {}, {dh_group::null, dh_group::ffdhe2048}}, hostnqn, subnqn,
                             1);
    auto o = run(c, h);
    EXPECT_TRUE(o.authenticated) << o.host_error;
    EXPECT_EQ(h.hash(), hash_id::sha512);
    EXPECT_EQ(h.group(), dh_group::null);
    EXPECT_NE(c.resp.describe().find("sha512, null"), std::string::npos);
}

TEST(DhchapExchange, WrongHostSecretIsRefused) {
    controller_side c(target_cfg(key()));
    initiator::dhchap_host h({key(), {}, {}, {}}, hostnqn, subnqn, 1);
    auto o = run(c, h);
    EXPECT_FALSE(o.authenticated);
    EXPECT_TRUE(o.failed);
    EXPECT_NE(o.host_error.find("refused"), std::string::npos) << o.host_error;
}

TEST(DhchapExchange, SameSecretForAnotherHostNqnIsRefused) {
    // The host's NQN is in its response: a secret is bound to its owner.
    auto hk = key();
    controller_side c(target_cfg(hk));
    initiator::dhchap_host h({hk, {}, {}, {}}, hostnqn + "x", subnqn, 1);
    EXPECT_TRUE(run(c, h).failed);
}

TEST(DhchapExchange, WrongControllerSecretIsCaughtByTheHost) {
    auto hk = key();
    controller_side c(target_cfg(hk, key()));
    initiator::dhchap_host h({hk, key(), {}, {}}, hostnqn, subnqn, 1);
    auto o = run(c, h);
    EXPECT_NE(o.host_error.find("controller's response is wrong"), std::string::npos)
        << o.host_error;
    // The host's Failure2 ends the transaction on the controller's side.
    EXPECT_FALSE(o.authenticated);
    EXPECT_TRUE(o.failed);
}

TEST(DhchapExchange, BidirectionalWithoutAControllerSecretFails) {
    auto hk = key();
    controller_side c(target_cfg(hk));
    initiator::dhchap_host h({hk, key(), {}, {}}, hostnqn, subnqn, 1);
    auto o = run(c, h);
    EXPECT_FALSE(o.authenticated);
    EXPECT_TRUE(o.failed);
}

TEST(DhchapExchange, HostWithoutASecretHereIsNotUsable) {
    controller_side c(nullptr);
    initiator::dhchap_host h({key(), {}, {}, {}}, hostnqn, subnqn, 1);
    auto o = run(c, h);
    EXPECT_TRUE(o.failed);
    EXPECT_NE(o.host_error.find("reason 2"), std::string::npos) << o.host_error;  // not usable
}

TEST(DhchapExchange, NoCommonHashOrGroup) {
    auto hk = key();
    auto cfg = target_cfg(hk);
    cfg->dhgroups = {dh_group::ffdhe2048};
    controller_side c(cfg);
    initiator::dhchap_host h({hk, {}, {}, {dh_group::null}}, hostnqn, subnqn, 1);
    auto o = run(c, h);
    EXPECT_TRUE(o.failed);
    EXPECT_NE(o.host_error.find("reason 5"), std::string::npos) << o.host_error;
}

TEST(DhchapExchange, MessagesOutOfOrderReplayedOrTruncatedEndIt) {
    auto hk = key();
    auto cfg = target_cfg(hk);
    {
        // A Reply before any Negotiate.
        controller_side c(cfg);
        initiator::dhchap_host h({hk, {}, {}, {}}, hostnqn, subnqn, 1);
        controller_side other(cfg);
        ASSERT_TRUE(other.send(h.negotiate()).ok());
        auto reply = h.reply(other.receive(), nullptr);
        ASSERT_TRUE(reply);
        c.send(*reply);
        EXPECT_TRUE(c.resp.failed());
        EXPECT_FALSE(c.resp.authenticated());
    }
    {
        // A Reply replayed from another transaction (its challenge differs).
        initiator::dhchap_host h({hk, {}, {}, {}}, hostnqn, subnqn, 1);
        controller_side a(cfg), b(cfg);
        ASSERT_TRUE(a.send(h.negotiate()).ok());
        auto reply = h.reply(a.receive(), nullptr);
        ASSERT_TRUE(b.send(h.negotiate()).ok());
        b.receive();
        b.send(*reply);
        auto s1 = b.receive();
        EXPECT_EQ(s1[1], uint8_t(nvme::auth::message::failure1));
        EXPECT_TRUE(b.resp.failed());
        EXPECT_FALSE(b.resp.authenticated());
    }
    {
        // The same Reply twice: the second is out of order and ends it.
        initiator::dhchap_host h({hk, {}, {}, {}}, hostnqn, subnqn, 1);
        controller_side c(cfg);
        ASSERT_TRUE(c.send(h.negotiate()).ok());
        auto reply = h.reply(c.receive(), nullptr);
        c.send(*reply);
        EXPECT_TRUE(c.resp.authenticated());
        c.send(*reply);
        EXPECT_TRUE(c.resp.failed());
        EXPECT_FALSE(c.resp.authenticated());
    }
    {
        // Another transaction ID, and a truncated Reply: Failure1.
        for (int variant = 0; variant < 2; ++variant) {
            initiator::dhchap_host h({hk, {}, {}, {}}, hostnqn, subnqn, 1);
            controller_side c(cfg);
            ASSERT_TRUE(c.send(h.negotiate()).ok());
            auto reply = h.reply(c.receive(), nullptr).value();
            if (variant == 0)
                reply[4] ^= 1;
            else
                reply.resize(reply.size() - 1);
            c.send(reply);
            auto f = c.receive();
            EXPECT_EQ(f[1], uint8_t(nvme::auth::message::failure1));
            EXPECT_EQ(f[7], uint8_t(failure::incorrect_payload));
            EXPECT_TRUE(c.resp.failed());
        }
    }
    {
        // Garbage: a payload too short for any message, an unknown type.
        controller_side c(cfg);
        c.send(std::vector<uint8_t>{1, 2, 3});
        EXPECT_TRUE(c.resp.failed());
        controller_side d(cfg);
        d.send(std::vector<uint8_t>(64, 0x77));
        EXPECT_TRUE(d.resp.failed());
    }
}

TEST(DhchapExchange, OversizedOrInconsistentLengthsAreRefused) {
    auto hk = key();
    auto cfg = target_cfg(hk);
    cfg->dhgroups = {dh_group::ffdhe2048};
    for (int variant = 0; variant < 3; ++variant) {
        controller_side c(cfg);
        initiator::dhchap_host h({hk, {}, {}, {}}, hostnqn, subnqn, 1);
        ASSERT_TRUE(c.send(h.negotiate()).ok());
        auto reply = h.reply(c.receive(), nullptr).value();
        if (variant == 0) {
            // A DH value longer than the group's, with the bytes to match.
            reply[10] = 0x00;
            reply[11] = 0x04;  // dhvlen 1024
            reply.resize(16 + 2 * 32 + 1024, 0x5a);
        } else if (variant == 1) {
            reply[6] = 64;  // hl of SHA-512 for a SHA-256 transaction
            reply.resize(16 + 2 * 64 + 256, 0);
        } else {
            // A DH value of the right length that is no group element (y = 1).
            std::fill(reply.end() - 256, reply.end(), 0);
            reply.back() = 1;
        }
        c.send(reply);
        auto f = c.receive();
        EXPECT_EQ(f[1], uint8_t(nvme::auth::message::failure1)) << variant;
        EXPECT_EQ(f[7],
                  uint8_t(variant == 2 ? failure::dhgroup_unusable : failure::incorrect_payload))
            << variant;
        EXPECT_FALSE(c.resp.authenticated());
        EXPECT_TRUE(c.resp.failed());
    }
    // A Send larger than any message still is one message: its tail is ignored
    // only where the layout says so (a Negotiate with two descriptors).
    controller_side c(cfg);
    initiator::dhchap_host h({hk, {}, {}, {}}, hostnqn, subnqn, 1);
    auto neg = h.negotiate();
    neg[7] = 2;  // napd 2: a second descriptor that is not there
    c.send(neg);
    EXPECT_EQ(c.receive()[7], uint8_t(failure::incorrect_payload));
}

TEST(DhchapExchange, ReauthenticationStartsOver) {
    auto hk = key();
    auto cfg = target_cfg(hk);
    controller_side c(cfg);
    initiator::dhchap_host h({hk, {}, {}, {}}, hostnqn, subnqn, 1);
    EXPECT_TRUE(run(c, h).authenticated);
    initiator::dhchap_host again({hk, {}, {}, {}}, hostnqn, subnqn, 2);
    EXPECT_TRUE(run(c, again).authenticated);
    // A failed re-authentication takes the queue's authentication away.
    initiator::dhchap_host wrong({key(), {}, {}, {}}, hostnqn, subnqn, 3);
    auto o = run(c, wrong);
    EXPECT_FALSE(o.authenticated);
    EXPECT_TRUE(o.failed);
}

TEST(DhchapExchange, EachTransactionTakesTheSecretsAsTheyAreThen) {
    auto k1 = key(), k2 = key(hash_id::sha384);
    std::shared_ptr<const nvmf::host_auth> now = target_cfg(k1);
    nvmf::dhchap_responder resp([&now] { return now; }, hostnqn, subnqn, 0);
    auto run_with = [&](const auth::dhchap_key& k) {
        initiator::dhchap_host h({k, {}, {}, {}}, hostnqn, subnqn, 1);
        auto send = [&](std::span<const uint8_t> m) {
            auto r = command(nvme::fabrics_type::authentication_send, m.size());
            std::memcpy(r.data.data(), m.data(), m.size());
            resp.execute(r);
        };
        auto receive = [&] {
            auto r = command(nvme::fabrics_type::authentication_receive, 4096);
            resp.execute(r);
            auto* p = reinterpret_cast<const uint8_t*>(r.data.data());
            return std::vector<uint8_t>(p, p + 4096);
        };
        send(h.negotiate());
        auto reply = h.reply(receive(), nullptr);
        if (reply) send(*reply);
        (void)receive();
        return resp.successes();
    };
    EXPECT_EQ(run_with(k1), 1u);
    // The secret is rotated: re-authentication with the new one passes...
    now = target_cfg(k2);
    EXPECT_EQ(run_with(k2), 2u);
    EXPECT_TRUE(resp.authenticated());
    // ... and the host's secret is removed: the next transaction fails.
    now = nullptr;
    EXPECT_EQ(run_with(k2), 2u);
    EXPECT_TRUE(resp.failed());
}

TEST(DhchapExchange, AFailureIsReadBeforeAnythingElse) {
    auto hk = key();
    controller_side c(target_cfg(hk));
    initiator::dhchap_host wrong({key(), {}, {}, {}}, hostnqn, subnqn, 1);
    ASSERT_TRUE(c.send(wrong.negotiate()).ok());
    c.send(wrong.reply(c.receive(), nullptr).value());
    EXPECT_FALSE(c.resp.failed());  // a Failure1 is owed
    // Trying again on the same queue instead of reading it ends the queue.
    initiator::dhchap_host right({hk, {}, {}, {}}, hostnqn, subnqn, 2);
    c.send(right.negotiate());
    EXPECT_TRUE(c.resp.failed());
    EXPECT_FALSE(c.resp.authenticated());
}

TEST(DhchapExchange, CommandFieldsAreChecked) {
    controller_side c(target_cfg(key()));
    auto r = command(nvme::fabrics_type::authentication_send, 16, 0xea);
    c.resp.execute(r);
    EXPECT_EQ(r.status(), nvme::sc::invalid_field);
    auto z = command(nvme::fabrics_type::authentication_receive, 0);
    c.resp.execute(z);
    EXPECT_EQ(z.status(), nvme::sc::invalid_field);
    auto m = command(nvme::fabrics_type::authentication_send, 16);
    m.data_len = 8;  // TL says 16
    c.resp.execute(m);
    EXPECT_EQ(m.status(), nvme::sc::sgl_data_length_invalid);
    EXPECT_FALSE(c.resp.failed());  // none of these is a message
    // A Challenge that does not fit the host's buffer: an error status, and
    // the transaction can go on with a buffer that fits.
    initiator::dhchap_host h({key(), {}, {}, {}}, hostnqn, subnqn, 1);
    ASSERT_TRUE(c.send(h.negotiate()).ok());
    auto small = command(nvme::fabrics_type::authentication_receive, 16);
    c.resp.execute(small);
    EXPECT_EQ(small.status(), nvme::sc::invalid_field);
    EXPECT_EQ(c.receive()[1], uint8_t(nvme::auth::message::challenge));
}

// Secure channel concatenation: both sides derive the same TLS PSK and
// NVMe1G identity from one exchange, a new one each time; R1 covers SC_C.
TEST(DhchapExchange, ConcatenationGeneratesTheSameTlsPskOnBothSides) {
    const nvmf::dhchap_channel plain{.tls_possible = true, .tls = false};
    for (hash_id hf : {hash_id::sha256, hash_id::sha384}) {
        for (bool bidi : {false, true}) {
            SCOPED_TRACE(fmt::format("{} {}", auth::hash_name(hf), bidi ? "bidirectional" : ""));
            auto hk = key(), ck = key();
            auto cfg = target_cfg(hk, ck);
            cfg->digests = {hash_id::sha512, hf};  // SHA-512 has no PSK digest: skipped
            controller_side c(cfg, 0, plain);
            // The host offers everything; concatenation leaves SHA-512 and null out.
            initiator::dhchap_host h(
                {hk, bidi ? std::optional(ck) : std::nullopt, {}, {}, nvme::auth::sc_c_newtlspsk},
                hostnqn, subnqn, 3);
            auto o = run(c, h);
            EXPECT_TRUE(o.authenticated) << o.host_error;
            EXPECT_EQ(h.hash(), hf);
            EXPECT_NE(h.group(), dh_group::null);
            EXPECT_EQ(c.resp.concatenation(), nvme::auth::sc_c_newtlspsk);
            auto hp = h.tls_psk();
            ASSERT_TRUE(hp.ok());
            ASSERT_EQ(c.psks.size(), 1u);
            EXPECT_EQ(c.psks[0].identity, hp->identity);
            EXPECT_EQ(c.psks[0].hash, hf);
            EXPECT_TRUE(auth::same_secret({c.psks[0].psk.data(), c.psks[0].psk.size()},
                                          {hp->psk.data(), hp->psk.size()}));
            EXPECT_EQ(hp->psk.size(), auth::hash_length(hf));
            EXPECT_TRUE(hp->identity.starts_with(
                fmt::format("NVMe1G0{} {} {} ", hf == hash_id::sha256 ? 1 : 2, hostnqn, subnqn)))
                << hp->identity;
            // A second exchange makes another key.
            controller_side c2(cfg, 0, plain);
            initiator::dhchap_host h2({hk, {}, {}, {}, nvme::auth::sc_c_newtlspsk}, hostnqn, subnqn,
                                      4);
            EXPECT_TRUE(run(c2, h2).authenticated);
            ASSERT_EQ(c2.psks.size(), 1u);
            EXPECT_NE(c2.psks[0].identity, hp->identity);
        }
    }
    // Without concatenation no key is made, and the host has none.
    auto hk = key();
    controller_side c3(target_cfg(hk), 0, plain);
    initiator::dhchap_host h({hk, {}, {}, {}}, hostnqn, subnqn, 5);
    EXPECT_TRUE(run(c3, h).authenticated);
    EXPECT_TRUE(c3.psks.empty());
    EXPECT_FALSE(h.tls_psk().ok());
}

TEST(DhchapExchange, ConcatenationIsRefusedWhereItCannotBe) {
    auto hk = key();
    struct refusal {
        const char* what;
        uint16_t qid;
        nvmf::dhchap_channel ch;
        uint8_t sc_c;
    } cases[] = {
        {"an I/O queue", 1, {true, false}, nvme::auth::sc_c_newtlspsk},
        {"NEWTLSPSK on a TLS queue", 0, {true, true}, nvme::auth::sc_c_newtlspsk},
        {"REPLACETLSPSK on a plain queue", 0, {true, false}, nvme::auth::sc_c_replacetlspsk},
        {"a listener without TLS", 0, {false, false}, nvme::auth::sc_c_newtlspsk},
        {"the obsolete SC_C 1", 0, {true, false}, 0x01},
    };
    for (auto& k : cases) {
        SCOPED_TRACE(k.what);
        controller_side c(target_cfg(hk), k.qid, k.ch);
        initiator::dhchap_host h({hk, {}, {}, {}, k.sc_c}, hostnqn, subnqn, 2);
        auto o = run(c, h);
        EXPECT_FALSE(o.authenticated);
        EXPECT_TRUE(o.failed);
        EXPECT_NE(o.host_error.find("concatenation mismatch"), std::string::npos) << o.host_error;
        EXPECT_TRUE(c.psks.empty());
    }
    // REPLACETLSPSK on a TLS admin queue is what re-authentication does.
    controller_side c(target_cfg(hk), 0, {true, true});
    initiator::dhchap_host h({hk, {}, {}, {}, nvme::auth::sc_c_replacetlspsk}, hostnqn, subnqn, 2);
    EXPECT_TRUE(run(c, h).authenticated);
    EXPECT_EQ(c.psks.size(), 1u);

    // Only SHA-512 or only the null group offered: nothing to make a key with.
    const nvmf::dhchap_channel plain{true, false};
    for (bool sha512 : {true, false}) {
        controller_side cs(target_cfg(hk), 0, plain);
        std::vector<uint8_t> neg =
            initiator::dhchap_host({hk, {}, {}, {}, nvme::auth::sc_c_newtlspsk}, hostnqn, subnqn, 2)
                .negotiate();
        // The descriptor's lists: one hash, one group.
        size_t d = sizeof(nvme::auth::negotiate_header);
        auto* pd = reinterpret_cast<nvme::auth::protocol_descriptor*>(neg.data() + d);
        pd->halen = 1;
        pd->dhlen = 1;
        pd->idlist[0] = uint8_t(sha512 ? hash_id::sha512 : hash_id::sha256);
        pd->idlist[nvme::auth::max_hash_ids] =
            uint8_t(sha512 ? dh_group::ffdhe2048 : dh_group::null);
        EXPECT_TRUE(cs.send(neg).ok());
        auto f = cs.receive();
        EXPECT_EQ(f[1], uint8_t(nvme::auth::message::failure1));
        EXPECT_EQ(f[offsetof(nvme::auth::failure_message, rescode_exp)],
                  uint8_t(sha512 ? failure::hash_unusable : failure::dhgroup_unusable))
            << (sha512 ? "sha512" : "null group");
    }

    // A concatenation Reply without C2 (the key could not be made), and an R1
    // computed without SC_C (a host of Linux 6.15-6.17), are refused.
    for (bool drop_c2 : {true, false}) {
        controller_side cs(target_cfg(hk), 0, plain);
        initiator::dhchap_host hh(
            {hk, {}, {}, {}, drop_c2 ? nvme::auth::sc_c_newtlspsk : uint8_t(0)}, hostnqn, subnqn,
            6);
        auto neg = hh.negotiate();
        neg[offsetof(nvme::auth::negotiate_header, sc_c)] = nvme::auth::sc_c_newtlspsk;
        EXPECT_TRUE(cs.send(neg).ok());
        std::string why;
        auto reply = hh.reply(cs.receive(), &why);
        ASSERT_TRUE(reply.ok()) << why;
        if (drop_c2) (*reply)[offsetof(nvme::auth::reply_header, cvalid)] = 0;
        EXPECT_TRUE(cs.send(*reply).ok());
        auto f = cs.receive();
        EXPECT_EQ(f[1], uint8_t(nvme::auth::message::failure1)) << drop_c2;
        EXPECT_FALSE(cs.resp.authenticated());
        EXPECT_TRUE(cs.psks.empty());
    }
}
