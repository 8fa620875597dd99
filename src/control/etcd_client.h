// Internal to the etcd store and the leader election: one gRPC channel per
// etcd endpoint and the order to try them in. Not for the rest of the control
// plane, which sees store.h and leader.h only.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "etcd/etcdserverpb/rpc.grpc.pb.h"

namespace weft::control::etcd {

class client {
  public:
    struct endpoint {
        std::string url;
        std::shared_ptr<grpc::Channel> channel;
        std::unique_ptr<etcdserverpb::KV::Stub> kv;
        std::unique_ptr<etcdserverpb::Lease::Stub> lease;
    };

    // "http://host:port,..." (a bare host:port is taken as http). Throws
    // store_error on an empty list or another scheme.
    explicit client(const std::string& endpoints);

    const std::string& endpoints() const { return endpoints_; }
    size_t size() const { return eps_.size(); }
    // The endpoints in the order to try them: the last one that answered
    // first, then the others round-robin.
    size_t first() const { return current_.load(std::memory_order_relaxed) % eps_.size(); }
    endpoint& at(size_t i) { return eps_[i % eps_.size()]; }
    // Endpoint i did not answer: start with the next one from now on.
    void failed(size_t i) {
        size_t cur = i % eps_.size();
        current_.compare_exchange_strong(cur, (cur + 1) % eps_.size());
    }

    // Runs an idempotent call f(endpoint&, grpc::ClientContext&) -> Status,
    // trying each endpoint in turn while the answer is UNAVAILABLE or
    // DEADLINE_EXCEEDED. Returns the last status (OK when one answered).
    template <class F>
    grpc::Status call(std::chrono::milliseconds deadline, F&& f) {
        grpc::Status st;
        size_t start = first();
        for (size_t n = 0; n < eps_.size(); ++n) {
            size_t i = (start + n) % eps_.size();
            grpc::ClientContext ctx;
            ctx.set_deadline(std::chrono::system_clock::now() + deadline);
            st = f(eps_[i], ctx);
            if (!retriable(st)) return st;
            failed(i);
        }
        return st;
    }

    static bool retriable(const grpc::Status& st) {
        return st.error_code() == grpc::StatusCode::UNAVAILABLE ||
               st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    }
    // True when the call surely never reached etcd: the channel could not
    // connect at all (as etcd's own client decides which writes to retry).
    static bool never_sent(const grpc::Status& st);

  private:
    std::string endpoints_;
    std::vector<endpoint> eps_;
    std::atomic<size_t> current_{0};
};

// The end of the range of keys that start with prefix: prefix with its last
// byte + 1 (trailing 0xff bytes dropped first); "\0" (no end) when none is left.
std::string prefix_end(std::string prefix);

}  // namespace weft::control::etcd
