// The CSI spec asks a plugin to answer ABORTED when an operation is already
// in flight for the same volume (or snapshot) rather than run two at once;
// the caller retries later. One set of busy keys, taken for one call.
//
//   inflight_guard g(busy_, "vol:" + id);
//   if (!g) return grpc::Status(grpc::StatusCode::ABORTED, ...);
#pragma once

#include <mutex>
#include <set>
#include <string>

namespace weft::csi {

class inflight {
  public:
    bool take(const std::string& key) {
        std::lock_guard g(m_);
        return keys_.insert(key).second;
    }
    void give_back(const std::string& key) {
        std::lock_guard g(m_);
        keys_.erase(key);
    }

  private:
    std::mutex m_;
    std::set<std::string> keys_;
};

class inflight_guard {
  public:
    inflight_guard(inflight& set, std::string key) : set_(set), key_(std::move(key)) {
        held_ = set_.take(key_);
    }
    ~inflight_guard() {
        if (held_) set_.give_back(key_);
    }
    inflight_guard(const inflight_guard&) = delete;
    inflight_guard& operator=(const inflight_guard&) = delete;
    explicit operator bool() const { return held_; }

  private:
    inflight& set_;
    std::string key_;
    bool held_ = false;
};

}  // namespace weft::csi
