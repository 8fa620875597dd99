// The control plane's durable state: a small key-value store with revisions,
// in the manner of etcd's v3 API, so that one interface has two backends:
// SQLite (one file, WAL; the embedded default) and etcd (replicated).
//
// Contract:
//  - Keys are '/'-separated strings ("volumes/<uuid>"); values are opaque
//    (the control plane stores JSON documents).
//  - Every committed change bumps the store's revision; each key remembers
//    the revision that last wrote it (its mod revision). A compare on revision
//    0 means "the key does not exist".
//  - commit() applies all its puts and deletes atomically when every compare
//    holds and returns the new revision; when a compare fails nothing changes
//    and it returns nullopt. That is the only way to write, so a read-modify-
//    write is a get, then a commit comparing the revision read.
//  - A store that cannot do its job (disk error, store unreachable) throws
//    store_error with a sentence; callers turn it into 503.
//  - Thread-safe: the REST server calls it from several threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace weft::control {

struct store_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct kv {
    std::string key;
    std::string value;
    int64_t revision = 0;  // the revision that last wrote the key
};

struct txn {
    struct compare {
        std::string key;
        int64_t revision = 0;  // 0: the key must not exist
    };
    std::vector<compare> compares;
    std::vector<std::pair<std::string, std::string>> puts;
    std::vector<std::string> deletes;

    txn& expect(std::string key, int64_t revision) {
        compares.push_back({std::move(key), revision});
        return *this;
    }
    txn& put(std::string key, std::string value) {
        puts.emplace_back(std::move(key), std::move(value));
        return *this;
    }
    txn& del(std::string key) {
        deletes.push_back(std::move(key));
        return *this;
    }
};

class store {
  public:
    virtual ~store() = default;
    virtual std::optional<kv> get(const std::string& key) = 0;
    // Every key that starts with prefix, sorted by key.
    virtual std::vector<kv> list(const std::string& prefix) = 0;
    virtual std::optional<int64_t> commit(const txn& t) = 0;
    virtual int64_t revision() = 0;
    // "sqlite:/path" or "etcd:http://host:port,..." for logs and /v1/status.
    virtual std::string describe() const = 0;
};

// Creates the file (and its schema) when missing. Throws store_error.
std::unique_ptr<store> open_sqlite_store(const std::string& path);

// A leader's fence (see leader.h): every commit of a store opened with one
// also requires that `key` exist with create revision token(), in the same
// etcd transaction. A commit refused by the fence (or made while token() is 0,
// i.e. not leading) throws store_error("not the leader any more") and changes
// nothing; nullopt stays "one of the caller's own compares failed".
struct commit_fence {
    std::string key;  // absolute etcd key, e.g. "/weft/leader"
    std::function<int64_t()> token;
};

// etcd v3 over gRPC (plain http only). endpoints: "http://host:port,..."; the
// store's keys live under prefix, so that several clusters can share one etcd.
// Each call has `deadline` per endpoint tried; an endpoint that does not
// answer is tried last next time. A commit whose outcome is unknown (the
// endpoint died or timed out after it was sent) is retried on another
// endpoint only when the transaction guards a key it writes (a retry cannot
// apply it twice); otherwise it throws store_error saying so. Throws
// store_error on a malformed endpoint list.
std::unique_ptr<store> open_etcd_store(
    const std::string& endpoints, const std::string& prefix = "/weft/",
    std::optional<commit_fence> fence = std::nullopt,
    std::chrono::milliseconds deadline = std::chrono::seconds(5));

}  // namespace weft::control
