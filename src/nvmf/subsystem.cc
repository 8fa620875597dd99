#include "nvmf/subsystem.h"

#include <spdlog/spdlog.h>

#include "nvmf/controller.h"
#include "runtime/reactor.h"

namespace weft::nvmf {

subsystem::subsystem(std::string nqn, subsystem_kind kind, std::string serial, std::string model,
                     uint16_t min_cntlid, uint16_t max_cntlid)
    : nqn_(std::move(nqn)),
      kind_(kind),
      serial_(std::move(serial)),
      model_(std::move(model)),
      table_(std::make_shared<ns_table>()),
      min_cntlid_(min_cntlid ? min_cntlid : 1),
      max_cntlid_(max_cntlid >= min_cntlid_ && max_cntlid <= 0xffef ? max_cntlid : 0xffef),
      next_cntlid_(min_cntlid_) {}

void subsystem::allow_any_host(bool any) {
    std::lock_guard lock(mutex_);
    any_host_ = any;
}

void subsystem::allow_host(const std::string& hostnqn) {
    std::lock_guard lock(mutex_);
    hosts_.insert(hostnqn);
}

void subsystem::set_access(bool any, std::set<std::string> hosts) {
    std::lock_guard lock(mutex_);
    any_host_ = any;
    hosts_ = std::move(hosts);
}

bool subsystem::host_allowed(const std::string& hostnqn) const {
    std::lock_guard lock(mutex_);
    return any_host_ || hosts_.count(hostnqn) != 0;
}

void subsystem::publish(ns_table t) {
    table_ = std::make_shared<const ns_table>(std::move(t));
    ns_gen_.fetch_add(1, std::memory_order_release);
}

result<uint32_t> subsystem::add_namespace(uint32_t nsid, std::shared_ptr<bdev::bdev> dev,
                                          ns_ids ids) {
    if (kind_ == subsystem_kind::discovery) return error{EINVAL};
    // The bdev's resize lock is never taken under mutex_ (a resize calls the
    // listener, which takes mutex_, with the resize lock held): register the
    // listener first, then publish; undo it if publishing fails.
    auto slot = std::make_shared<std::atomic<uint32_t>>(0);  // the NSID, once known
    uint64_t listener = dev->add_resize_listener([this, slot](uint64_t, uint64_t) {
        // A resize is a namespace attribute change the hosts hear about.
        uint32_t id = slot->load(std::memory_order_acquire);
        if (id == 0) return;
        ns_gen_.fetch_add(1, std::memory_order_release);
        notify_namespace_changed(id);
    });
    error failed{};
    {
        std::lock_guard lock(mutex_);
        if (nsid == 0) {
            nsid = 1;
            while (table_->count(nsid)) ++nsid;
        }
        if (nsid > max_namespaces)
            failed = error{ENOSPC};
        else if (table_->count(nsid))
            failed = error{EEXIST};
        else {
            ns_table next = *table_;
            next.emplace(nsid, std::make_shared<ns>(nsid, dev, ids));
            publish(std::move(next));
            resize_listener_ids_[nsid] = listener;
            slot->store(nsid, std::memory_order_release);
        }
    }
    if (failed.code) {
        dev->remove_resize_listener(listener);
        return failed;
    }
    notify_namespace_changed(nsid);
    return nsid;
}

result<void> subsystem::remove_namespace(uint32_t nsid) {
    std::shared_ptr<ns> removed;
    uint64_t listener = 0;
    {
        std::lock_guard lock(mutex_);
        auto it = table_->find(nsid);
        if (it == table_->end()) return error{ENOENT};
        removed = it->second;
        listener = resize_listener_ids_[nsid];
        resize_listener_ids_.erase(nsid);
        ns_table next = *table_;
        next.erase(nsid);
        publish(std::move(next));
    }
    removed->dev().remove_resize_listener(listener);  // outside mutex_, as in add_namespace
    notify_namespace_changed(nsid);
    return {};
}

std::shared_ptr<const ns_table> subsystem::namespaces() const {
    std::lock_guard lock(mutex_);
    return table_;
}

uint16_t subsystem::register_controller(std::shared_ptr<controller> c) {
    std::lock_guard lock(mutex_);
    // CNTLIDs from the target's range (at most 1..FFEFh); reuse freed ones,
    // round-robin so a stale host does not meet a new controller under its
    // old ID at once.
    for (uint32_t tries = 0; tries <= uint32_t(max_cntlid_ - min_cntlid_); ++tries) {
        uint16_t id = next_cntlid_;
        next_cntlid_ = next_cntlid_ >= max_cntlid_ ? min_cntlid_ : next_cntlid_ + 1;
        auto it = controllers_.find(id);
        if (it == controllers_.end() || it->second.expired()) {
            controllers_[id] = c;
            return id;
        }
    }
    return 0;
}

void subsystem::set_ana_state(nvme::ana_state s) {
    {
        std::lock_guard lock(mutex_);  // one change at a time: counted once each
        if (ana_state_.load() == s) return;
        ana_state_.store(s, std::memory_order_release);
        ana_chgcnt_.fetch_add(1, std::memory_order_acq_rel);
    }
    for (auto& c : live_controllers()) c->ana_changed();
}

void subsystem::unregister_controller(uint16_t cntlid) {
    std::lock_guard lock(mutex_);
    controllers_.erase(cntlid);
}

std::shared_ptr<controller> subsystem::find_controller(uint16_t cntlid) const {
    std::lock_guard lock(mutex_);
    auto it = controllers_.find(cntlid);
    return it == controllers_.end() ? nullptr : it->second.lock();
}

std::vector<std::shared_ptr<controller>> subsystem::live_controllers() const {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<controller>> live;
    for (auto& [id, w] : controllers_)
        if (auto c = w.lock()) live.push_back(std::move(c));
    return live;
}

void subsystem::notify_namespace_changed(uint32_t nsid) {
    for (auto& c : live_controllers()) c->namespace_changed(nsid);
}

void subsystem::remove() {
    removed_.store(true, std::memory_order_release);
    // Each controller ends on its home reactor; the message holds a reference.
    for (auto& c : live_controllers()) {
        auto* held = new std::shared_ptr<controller>(std::move(c));
        reactor::local().send((*held)->home(),
                              {[](void* p) {
                                   auto* c = static_cast<std::shared_ptr<controller>*>(p);
                                   (*c)->shutdown("its subsystem was removed");
                                   delete c;
                               },
                               held});
    }
}

}  // namespace weft::nvmf
