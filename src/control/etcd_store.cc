// The replicated store: etcd's v3 API over gRPC (store.h says what a store
// promises). Keys are the store's prefix + the caller's key; a key's revision
// is etcd's mod revision and the store's revision etcd's header revision, so
// that compares map one to one: revision 0 is "CREATE revision == 0" (absent)
// and revision N is "MOD revision == N".
#include <grpcpp/grpcpp.h>

#include <map>
#include <set>

#include <fmt/format.h>

#include "control/etcd_client.h"
#include "control/store.h"

namespace weft::control {

namespace etcd {

namespace {

std::string trim(std::string s) {
    size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

client::client(const std::string& endpoints) : endpoints_(endpoints) {
    size_t pos = 0;
    while (pos <= endpoints.size()) {
        size_t comma = endpoints.find(',', pos);
        if (comma == std::string::npos) comma = endpoints.size();
        std::string url = trim(endpoints.substr(pos, comma - pos));
        pos = comma + 1;
        if (url.empty()) continue;
        std::string target = url;
        if (target.starts_with("http://")) target = target.substr(7);
        if (target.find("://") != std::string::npos)
            throw store_error(fmt::format(
                "etcd endpoint {}: only http:// endpoints are supported (no TLS yet)", url));
        while (target.ends_with("/")) target.pop_back();
        grpc::ChannelArguments args;
        // A member that comes back is used again within a second or so,
        // not after gRPC's default back-off of up to two minutes.
        args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
        args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
        args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
        args.SetMaxReceiveMessageSize(64 << 20);
        endpoint ep;
        ep.url = url;
        ep.channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
        ep.kv = etcdserverpb::KV::NewStub(ep.channel);
        ep.lease = etcdserverpb::Lease::NewStub(ep.channel);
        eps_.push_back(std::move(ep));
    }
    if (eps_.empty()) throw store_error(fmt::format("no etcd endpoint in \"{}\"", endpoints));
}

bool client::never_sent(const grpc::Status& st) {
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE) return false;
    const std::string& m = st.error_message();
    return m.find("failed to connect to all addresses") != std::string::npos ||
           m.find("Failed to connect to remote host") != std::string::npos;
}

std::string prefix_end(std::string prefix) {
    while (!prefix.empty()) {
        auto last = static_cast<unsigned char>(prefix.back());
        if (last < 0xff) {
            prefix.back() = static_cast<char>(last + 1);
            return prefix;
        }
        prefix.pop_back();
    }
    return std::string(1, '\0');
}

}  // namespace etcd

namespace {

using etcdserverpb::Compare;

constexpr int64_t page = 500;  // keys per Range of a list

class etcd_store final : public store {
  public:
    etcd_store(const std::string& endpoints, std::string prefix, std::optional<commit_fence> fence,
               std::chrono::milliseconds deadline)
        : client_(endpoints),
          prefix_(std::move(prefix)),
          fence_(std::move(fence)),
          deadline_(deadline) {
        if (prefix_.empty()) throw store_error("the etcd store needs a key prefix");
    }

    std::optional<kv> get(const std::string& key) override {
        etcdserverpb::RangeRequest req;
        req.set_key(prefix_ + key);
        auto resp = range(req, "read");
        if (resp.kvs_size() == 0) return std::nullopt;
        auto& x = resp.kvs(0);
        return kv{key, x.value(), x.mod_revision()};
    }

    std::vector<kv> list(const std::string& prefix) override {
        // Pages of `page` keys, every page at the first one's revision: one
        // consistent snapshot however many keys there are.
        std::string from = prefix_ + prefix, end = etcd::prefix_end(prefix_ + prefix);
        int64_t at = 0;
        std::vector<kv> out;
        for (;;) {
            etcdserverpb::RangeRequest req;
            req.set_key(from);
            req.set_range_end(end);
            req.set_limit(page);
            req.set_revision(at);
            req.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
            req.set_sort_target(etcdserverpb::RangeRequest::KEY);
            auto resp = range(req, "list");
            if (at == 0) at = resp.header().revision();
            for (auto& x : resp.kvs())
                out.push_back(kv{x.key().substr(prefix_.size()), x.value(), x.mod_revision()});
            if (!resp.more() || resp.kvs_size() == 0) return out;
            from = resp.kvs(resp.kvs_size() - 1).key() + '\0';
        }
    }

    int64_t revision() override {
        etcdserverpb::RangeRequest req;
        req.set_key(prefix_);
        req.set_count_only(true);
        return range(req, "read the revision").header().revision();
    }

    std::optional<int64_t> commit(const txn& t) override {
        int64_t token = 0;
        if (fence_) {
            token = fence_->token();
            if (token == 0) throw store_error("not the leader any more");
        }
        // etcd refuses a txn that writes a key twice; the store's meaning
        // (puts, then deletes) is kept by dropping what a later op overrides.
        std::map<std::string, std::string> puts;
        for (auto& [k, v] : t.puts) puts[k] = v;
        std::set<std::string> dels(t.deletes.begin(), t.deletes.end());
        for (auto& k : dels) puts.erase(k);

        etcdserverpb::TxnRequest req;
        // A compare that the txn itself makes false once applied: any on a
        // key it puts (its revision moves), one on a revision (not absence)
        // of a key it deletes.
        bool guarded = false;
        for (auto& c : t.compares) {
            auto* cmp = req.add_compare();
            cmp->set_key(prefix_ + c.key);
            cmp->set_result(Compare::EQUAL);
            if (c.revision == 0) {
                cmp->set_target(Compare::CREATE);
                cmp->set_create_revision(0);
            } else {
                cmp->set_target(Compare::MOD);
                cmp->set_mod_revision(c.revision);
            }
            guarded = guarded || puts.count(c.key) || (c.revision != 0 && dels.count(c.key));
        }
        if (fence_) {
            auto* cmp = req.add_compare();
            cmp->set_key(fence_->key);
            cmp->set_result(Compare::EQUAL);
            cmp->set_target(Compare::CREATE);
            cmp->set_create_revision(token);
        }
        for (auto& [k, v] : puts) {
            auto* put = req.add_success()->mutable_request_put();
            put->set_key(prefix_ + k);
            put->set_value(v);
        }
        for (auto& k : dels)
            req.add_success()->mutable_request_delete_range()->set_key(prefix_ + k);
        // On failure etcd reads the fence's key in the same transaction: it
        // says whether the fence is why.
        if (fence_) add_read(req, fence_->key);

        bool unknown = false;  // an earlier attempt may have been applied
        grpc::Status st;
        size_t start = client_.first();
        for (size_t n = 0; n < client_.size(); ++n) {
            size_t i = start + n;
            grpc::ClientContext ctx;
            ctx.set_deadline(std::chrono::system_clock::now() + deadline_);
            etcdserverpb::TxnResponse resp;
            st = client_.at(i).kv->Txn(&ctx, req, &resp);
            if (st.ok()) return outcome(puts, dels, token, unknown, resp);
            if (!etcd::client::retriable(st))
                throw store_error(fmt::format("etcd ({}) refused a change: {}", client_.endpoints(),
                                              st.error_message()));
            client_.failed(i);
            if (etcd::client::never_sent(st)) continue;
            // Sent, and perhaps applied (etcd may still apply a proposal that
            // timed out). Another try is safe only when guarded: once the
            // txn is applied, a second try fails its compares instead of
            // applying twice. That try also reads back what the txn writes,
            // to tell "applied by the first try" from "a compare failed".
            if (!guarded)
                throw store_error(fmt::format(
                    "etcd ({}) did not confirm a change ({}): it may or may not have been "
                    "applied",
                    client_.endpoints(), st.error_message()));
            if (!unknown) {
                for (auto& [k, v] : puts) add_read(req, prefix_ + k);
                for (auto& k : dels) add_read(req, prefix_ + k);
            }
            unknown = true;
        }
        throw store_error(fmt::format(
            "etcd did not answer at any of {}{}: {}", client_.endpoints(),
            unknown ? " (the change may or may not have been applied)" : "", st.error_message()));
    }

    std::string describe() const override { return "etcd:" + client_.endpoints(); }

  private:
    static void add_read(etcdserverpb::TxnRequest& req, const std::string& key) {
        req.add_failure()->mutable_request_range()->set_key(key);
    }

    std::optional<int64_t> outcome(const std::map<std::string, std::string>& puts,
                                   const std::set<std::string>& dels, int64_t token, bool unknown,
                                   const etcdserverpb::TxnResponse& resp) {
        if (resp.succeeded()) return resp.header().revision();
        // The failure branch's reads, by key.
        std::map<std::string, const mvccpb::KeyValue*> now;
        for (auto& r : resp.responses())
            for (auto& x : r.response_range().kvs()) now[x.key()] = &x;
        auto held = [&](const std::string& key) -> const mvccpb::KeyValue* {
            auto it = now.find(key);
            return it == now.end() ? nullptr : it->second;
        };
        if (unknown && (!puts.empty() || !dels.empty())) {
            // Did the try that timed out go through? It did when the store
            // holds exactly what the txn wrote, every put at one revision.
            int64_t at = 0;
            bool mine = true;
            for (auto& [k, v] : puts) {
                auto* x = held(prefix_ + k);
                if (!x || x->value() != v || (at && x->mod_revision() != at)) mine = false;
                if (x && !at) at = x->mod_revision();
            }
            for (auto& k : dels)
                if (held(prefix_ + k)) mine = false;
            if (mine) return at ? at : resp.header().revision();
        }
        if (fence_) {
            auto* x = held(fence_->key);
            if (!x || x->create_revision() != token) throw store_error("not the leader any more");
        }
        return std::nullopt;
    }

    etcdserverpb::RangeResponse range(const etcdserverpb::RangeRequest& req, const char* what) {
        etcdserverpb::RangeResponse resp;
        auto st =
            client_.call(deadline_, [&](etcd::client::endpoint& ep, grpc::ClientContext& ctx) {
                return ep.kv->Range(&ctx, req, &resp);
            });
        if (!st.ok())
            throw store_error(fmt::format("etcd ({}) could not {}: {}", client_.endpoints(), what,
                                          st.error_message()));
        return resp;
    }

    etcd::client client_;
    std::string prefix_;
    std::optional<commit_fence> fence_;
    std::chrono::milliseconds deadline_;
};

}  // namespace

std::unique_ptr<store> open_etcd_store(const std::string& endpoints, const std::string& prefix,
                                       std::optional<commit_fence> fence,
                                       std::chrono::milliseconds deadline) {
    return std::make_unique<etcd_store>(endpoints, prefix, std::move(fence), deadline);
}

}  // namespace weft::control
