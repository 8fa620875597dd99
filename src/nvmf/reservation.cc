#include "nvmf/reservation.h"

#include <algorithm>
#include <cstring>

namespace weft::nvmf {

using nvme::reservation_type;
namespace sc = nvme::sc;

namespace {
bool valid_type(reservation_type t) {
    return t >= reservation_type::write_exclusive &&
           t <= reservation_type::exclusive_access_all_registrants;
}
}  // namespace

reservation_state::registrant* reservation_state::find(const host_id& h) {
    for (auto& r : regs_)
        if (r.host == h) return &r;
    return nullptr;
}
const reservation_state::registrant* reservation_state::find(const host_id& h) const {
    return const_cast<reservation_state*>(this)->find(h);
}

bool reservation_state::all_registrants_type() const {
    return type_ == reservation_type::write_exclusive_all_registrants ||
           type_ == reservation_type::exclusive_access_all_registrants;
}

bool reservation_state::is_holder(const host_id& h) const {
    if (!held()) return false;
    if (all_registrants_type()) return find(h) != nullptr;
    return holder_ && *holder_ == h;
}

void reservation_state::unregister(const host_id& h) {
    bool was_holder = is_holder(h);
    regs_.erase(std::remove_if(regs_.begin(), regs_.end(), [&](auto& r) { return r.host == h; }),
                regs_.end());
    // A holder that unregisters releases; with the all-registrants types the
    // reservation lasts while any registrant remains (8.19.x).
    if (was_holder && (!all_registrants_type() || regs_.empty())) {
        type_ = reservation_type::none;
        holder_.reset();
    }
}

nvme::status reservation_state::register_key(const host_id& h, uint16_t cntlid, unsigned action,
                                             bool iekey, uint64_t crkey, uint64_t nrkey) {
    registrant* r = find(h);
    switch (action) {
        case 0:  // register
            if (nrkey == 0) return sc::invalid_field;
            if (r) return r->key == nrkey ? sc::success : sc::reservation_conflict;
            regs_.push_back({h, cntlid, nrkey});
            ++gen_;
            return sc::success;
        case 1:  // unregister
            if (!r) return sc::reservation_conflict;
            if (!iekey && r->key != crkey) return sc::reservation_conflict;
            unregister(h);
            ++gen_;
            return sc::success;
        case 2:  // replace
            if (nrkey == 0) return sc::invalid_field;
            if (!r) {
                // Not registered: with IEKEY (or a zero current key) this registers.
                if (!iekey && crkey != 0) return sc::reservation_conflict;
                regs_.push_back({h, cntlid, nrkey});
            } else {
                if (!iekey && r->key != crkey) return sc::reservation_conflict;
                r->key = nrkey;
            }
            ++gen_;
            return sc::success;
        default:
            return sc::invalid_field;
    }
}

nvme::status reservation_state::acquire(const host_id& h, unsigned action, bool iekey,
                                        reservation_type type, uint64_t crkey, uint64_t prkey) {
    if (iekey) return sc::invalid_field;  // IEKEY is reserved for Acquire
    registrant* r = find(h);
    if (!r || r->key != crkey) return sc::reservation_conflict;
    if (!valid_type(type)) return sc::invalid_field;
    switch (action) {
        case 0:  // acquire
            if (!held()) {
                type_ = type;
                holder_ = h;
                if (all_registrants_type()) holder_.reset();
                return sc::success;
            }
            if (is_holder(h) && type_ == type) return sc::success;
            return sc::reservation_conflict;
        case 1:    // preempt
        case 2: {  // preempt and abort (the abort is a best effort the host does not rely on)
            auto drop_key = [&](uint64_t key) {
                std::vector<host_id> victims;
                for (auto& x : regs_)
                    if (x.key == key && x.host != h) victims.push_back(x.host);
                for (auto& v : victims)
                    regs_.erase(std::remove_if(regs_.begin(), regs_.end(),
                                               [&](auto& x) { return x.host == v; }),
                                regs_.end());
                return !victims.empty();
            };
            if (!held()) {
                if (prkey == 0) return sc::invalid_field;
                drop_key(prkey);
                ++gen_;
                return sc::success;
            }
            if (all_registrants_type()) {
                if (prkey == 0) {
                    // Everyone else goes; the preempter holds the new type.
                    regs_.erase(std::remove_if(regs_.begin(), regs_.end(),
                                               [&](auto& x) { return x.host != h; }),
                                regs_.end());
                    type_ = type;
                    holder_ = h;
                    if (all_registrants_type()) holder_.reset();
                } else {
                    drop_key(prkey);
                }
                ++gen_;
                return sc::success;
            }
            const registrant* holder = holder_ ? find(*holder_) : nullptr;
            if (holder && holder->key == prkey) {
                drop_key(prkey);
                type_ = type;
                holder_ = h;
                if (all_registrants_type()) holder_.reset();
            } else {
                if (prkey == 0) return sc::invalid_field;
                drop_key(prkey);
            }
            ++gen_;
            return sc::success;
        }
        default:
            return sc::invalid_field;
    }
}

nvme::status reservation_state::release(const host_id& h, unsigned action, bool iekey,
                                        reservation_type type, uint64_t crkey) {
    if (iekey) return sc::invalid_field;
    registrant* r = find(h);
    if (!r || r->key != crkey) return sc::reservation_conflict;
    switch (action) {
        case 0:                                                // release
            if (!held() || !is_holder(h)) return sc::success;  // nothing of ours to release
            if (type != type_) return sc::invalid_field;
            type_ = reservation_type::none;
            holder_.reset();
            return sc::success;
        case 1:  // clear
            regs_.clear();
            type_ = reservation_type::none;
            holder_.reset();
            ++gen_;
            return sc::success;
        default:
            return sc::invalid_field;
    }
}

bool reservation_state::allows(const host_id& h, bool write) const {
    if (!held() || is_holder(h)) return true;
    bool registered = find(h) != nullptr;
    switch (type_) {
        case reservation_type::write_exclusive:
            return !write;
        case reservation_type::exclusive_access:
            return false;
        case reservation_type::write_exclusive_registrants_only:
        case reservation_type::write_exclusive_all_registrants:
            return registered || !write;
        case reservation_type::exclusive_access_registrants_only:
        case reservation_type::exclusive_access_all_registrants:
            return registered;
        default:
            return true;
    }
}

void reservation_state::report(std::span<std::byte> out) const {
    std::memset(out.data(), 0, out.size());
    nvme::reservation_status_ext_header hdr{};
    hdr.gen = gen_;
    hdr.rtype = uint8_t(type_);
    hdr.regctl = uint16_t(regs_.size());
    size_t n = std::min(out.size(), sizeof hdr);
    std::memcpy(out.data(), &hdr, n);
    size_t off = sizeof hdr;
    for (auto& r : regs_) {
        if (off >= out.size()) break;
        nvme::registered_controller_ext e{};
        e.cntlid = r.cntlid;
        e.rcsts = is_holder(r.host) ? 1 : 0;
        e.rkey = r.key;
        std::memcpy(e.hostid, r.host.data(), 16);
        std::memcpy(out.data() + off, &e, std::min(out.size() - off, sizeof e));
        off += sizeof e;
    }
}

}  // namespace weft::nvmf
