// Leader election over etcd (leader.h says what it promises). One background
// thread does everything: the lease, its keepalives, the campaign and the
// look at who leads; the public calls only read what it found.
#include "control/leader.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "control/etcd_client.h"

namespace weft::control {

using clock_type = std::chrono::steady_clock;

struct leader_election::impl {
    impl(const std::string& endpoints, std::string id, std::string key, options opt)
        : client(endpoints), id(std::move(id)), key(std::move(key)), opt(opt) {}

    etcd::client client;
    const std::string id, key;
    const options opt;

    // Read by any thread.
    std::atomic<int64_t> token{0};                // the key's create revision while leading
    std::atomic<clock_type::rep> lease_until{0};  // the lease is alive until then
    mutable std::mutex mu;
    std::string holder;  // guarded by mu

    // The thread's own, and resign()'s once it is joined.
    int64_t lease = 0;
    int64_t lost_lease = 0;  // given up on, still to revoke
    clock_type::time_point next_keepalive;

    std::atomic<bool> finished{false};  // resigned or abandoned
    std::mutex stop_mu;
    std::condition_variable stop_cv;
    bool stopping = false;  // guarded by stop_mu
    std::thread thread;

    bool leading() const {
        return token.load() != 0 &&
               clock_type::now().time_since_epoch().count() < lease_until.load();
    }

    void set_holder(std::string h) {
        std::lock_guard g(mu);
        holder = std::move(h);
    }

    void run() {
        for (;;) {
            step();
            auto wake = clock_type::now() + opt.poll;
            if (lease != 0 && next_keepalive < wake) wake = next_keepalive;
            std::unique_lock l(stop_mu);
            if (stop_cv.wait_until(l, wake, [&] { return stopping; })) return;
        }
    }

    void step() {
        if (lease == 0 && !grant()) return;
        if (clock_type::now() >= next_keepalive) keepalive();
        if (lease != 0 && clock_type::now().time_since_epoch().count() >= lease_until.load()) {
            // Keepalives failed for ttl: etcd may expire the lease any time
            // now, so stop leading before it can, and start afresh. The old
            // lease is revoked once etcd answers, so that its key goes then
            // rather than a ttl later (etcd renews leases on a new raft leader).
            token = 0;
            lost_lease = lease;
            lease = 0;
            lease_until = 0;
            return;
        }
        if (lost_lease != 0 && revoke(lost_lease)) lost_lease = 0;
        if (lease != 0) observe();
    }

    bool grant() {
        etcdserverpb::LeaseGrantRequest req;
        req.set_ttl(opt.ttl.count());
        etcdserverpb::LeaseGrantResponse resp;
        auto sent = clock_type::now();
        auto st = client.call(opt.deadline, [&](auto& ep, grpc::ClientContext& ctx) {
            return ep.lease->LeaseGrant(&ctx, req, &resp);
        });
        if (!st.ok() || resp.id() == 0 || resp.ttl() <= 0) return false;
        lease = resp.id();
        alive_from(sent, resp.ttl());
        return true;
    }

    // The lease lives ttl from when the keepalive was sent (etcd counts from
    // when it got it, later): a safe side to be wrong on.
    void alive_from(clock_type::time_point sent, int64_t ttl) {
        lease_until = (sent + std::chrono::seconds(ttl)).time_since_epoch().count();
        next_keepalive = sent + std::chrono::seconds(ttl) / 3;
    }

    void keepalive() {
        etcdserverpb::LeaseKeepAliveRequest req;
        req.set_id(lease);
        etcdserverpb::LeaseKeepAliveResponse resp;
        auto sent = clock_type::now();
        // One short stream per keepalive: each can go to whichever endpoint
        // answers, with a deadline, and nothing lingers between them.
        auto st = client.call(opt.deadline, [&](auto& ep, grpc::ClientContext& ctx) {
            auto stream = ep.lease->LeaseKeepAlive(&ctx);
            bool got = stream->Write(req) && stream->WritesDone() && stream->Read(&resp);
            auto fin = stream->Finish();
            if (!fin.ok()) return fin;
            return got ? grpc::Status::OK
                       : grpc::Status(grpc::StatusCode::UNAVAILABLE, "no keepalive answer");
        });
        if (!st.ok()) {
            next_keepalive = clock_type::now() + opt.poll;  // try again soon
            return;
        }
        // An answer that comes after the lease ran out here is not taken:
        // is_leader() said false already, and a leader that stepped down
        // starts afresh rather than come back with its old token.
        if (clock_type::now().time_since_epoch().count() >= lease_until.load()) return;
        if (resp.ttl() <= 0) {  // the lease is gone: whatever it held went too
            token = 0;
            lease = 0;
            lease_until = 0;
            return;
        }
        alive_from(sent, resp.ttl());
    }

    // Who holds the key; campaign when nobody does.
    void observe() {
        etcdserverpb::RangeRequest get;
        get.set_key(key);
        etcdserverpb::RangeResponse got;
        auto st = client.call(opt.deadline, [&](auto& ep, grpc::ClientContext& ctx) {
            return ep.kv->Range(&ctx, get, &got);
        });
        if (!st.ok()) return;  // nothing learnt; the lease decides
        if (got.kvs_size() == 0) {
            token = 0;
            set_holder("");
            campaign();
            return;
        }
        settle(got.kvs(0));
    }

    void settle(const mvccpb::KeyValue& x) {
        set_holder(x.value());
        // Ours when it carries our lease (also after a campaign whose answer
        // was lost); anyone else's key means ours is gone.
        token = x.lease() == lease ? x.create_revision() : 0;
    }

    void campaign() {
        etcdserverpb::TxnRequest req;
        auto* cmp = req.add_compare();
        cmp->set_key(key);
        cmp->set_result(etcdserverpb::Compare::EQUAL);
        cmp->set_target(etcdserverpb::Compare::CREATE);
        cmp->set_create_revision(0);
        auto* put = req.add_success()->mutable_request_put();
        put->set_key(key);
        put->set_value(id);
        put->set_lease(lease);
        req.add_failure()->mutable_request_range()->set_key(key);
        etcdserverpb::TxnResponse resp;
        // Idempotent enough to retry elsewhere: a second try after a first
        // that went through finds the key, with our lease (settle).
        auto st = client.call(opt.deadline, [&](auto& ep, grpc::ClientContext& ctx) {
            return ep.kv->Txn(&ctx, req, &resp);
        });
        if (!st.ok()) return;
        if (resp.succeeded()) {
            set_holder(id);
            token = resp.header().revision();  // the txn's revision created the key
            return;
        }
        for (auto& r : resp.responses())
            for (auto& x : r.response_range().kvs()) settle(x);
    }

    // True when the lease is gone (revoked now or before).
    bool revoke(int64_t id) {
        etcdserverpb::LeaseRevokeRequest req;
        req.set_id(id);
        etcdserverpb::LeaseRevokeResponse resp;
        auto st = client.call(opt.deadline, [&](auto& ep, grpc::ClientContext& ctx) {
            return ep.lease->LeaseRevoke(&ctx, req, &resp);
        });
        return st.ok() || st.error_code() == grpc::StatusCode::NOT_FOUND;
    }

    void stop() {
        {
            std::lock_guard g(stop_mu);
            stopping = true;
        }
        stop_cv.notify_all();
        if (thread.joinable()) thread.join();
    }
};

leader_election::leader_election(const std::string& endpoints, std::string id, std::string prefix,
                                 options opt)
    : impl_(std::make_unique<impl>(endpoints, std::move(id), prefix + "leader", opt)) {
    impl_->thread = std::thread([this] { impl_->run(); });
}

leader_election::~leader_election() {
    resign();
}

bool leader_election::is_leader() const {
    return impl_->leading();
}

std::string leader_election::leader_id() const {
    std::lock_guard g(impl_->mu);
    return impl_->holder;
}

int64_t leader_election::leader_revision() const {
    int64_t t = impl_->token.load();
    return impl_->leading() ? t : 0;
}

const std::string& leader_election::id() const {
    return impl_->id;
}
const std::string& leader_election::key() const {
    return impl_->key;
}

commit_fence leader_election::fence() const {
    return commit_fence{impl_->key, [this] { return leader_revision(); }};
}

void leader_election::resign() {
    if (impl_->finished.exchange(true)) return;
    impl_->stop();
    impl_->token = 0;
    impl_->lease_until = 0;
    // etcd deletes the key with the lease.
    if (impl_->lease != 0) impl_->revoke(impl_->lease);
    if (impl_->lost_lease != 0) impl_->revoke(impl_->lost_lease);
    impl_->set_holder("");
}

void leader_election::abandon() {
    impl_->stop();
}

}  // namespace weft::control
