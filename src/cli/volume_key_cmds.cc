// `weft engine volume-key set|erase|rotate|rewrap|list`: encryption at rest
// on one engine. A volume (or a nexus: encrypted above its replicas) gets a
// data key, wrapped by the engine's key-encryption key (weft-engine
// --kek-file); its shares then serve it encrypted. Erasing the key is a
// crypto-erase; rotating it re-encrypts the data in the background.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/connection.h"
#include "cli/format.h"

namespace weft::cli {

namespace {

struct key_opts {
    api_options api;
    std::string pool, name, nexus;
    std::string wrapped_key;
    std::string rate;
    bool unlimited = false;
    bool wait = false;
    bool yes = false;
    bool as_json = false;
};

// "45% (28.00 MiB of 64.00 MiB), 16.00 MiB/s", or why it stopped.
std::string rotation_text(const pb::KeyRotation& r) {
    double pct =
        r.size_bytes() ? std::floor(100.0 * double(r.rotated_bytes()) / double(r.size_bytes())) : 0;
    std::string s = fmt::format("{:.0f}% ({} of {})", pct, human_bytes(r.rotated_bytes()),
                                human_bytes(r.size_bytes()));
    if (r.state() == "waiting") return "waiting: " + r.error();
    if (!r.running()) return "stopped at " + s + (r.error().empty() ? "" : ": " + r.error());
    return s + (r.rate_bytes() ? ", at most " + human_rate(double(r.rate_bytes())) : "");
}

// The target as the user named it, for messages.
std::string named(const key_opts& o) {
    return o.nexus.empty() ? o.pool + "/" + o.name : "nexus " + o.nexus;
}

// POOL VOLUME or --nexus UUID, one of the two; false with a message.
bool check_target(const key_opts& o) {
    const bool volume = !o.pool.empty() && !o.name.empty();
    if (volume != !o.nexus.empty() && (volume || (o.pool.empty() && o.name.empty()))) return true;
    fail(volume || !o.pool.empty() ? "give POOL VOLUME or --nexus UUID, not both"
                                   : "give POOL VOLUME, or --nexus UUID");
    return false;
}

template <typename Req>
void fill_target(const key_opts& o, Req& req) {
    if (o.nexus.empty())
        *req.mutable_volume() = volume_ref(o.pool, o.name);
    else
        req.set_nexus(o.nexus);
}

int key_set(key_opts& o) {
    if (!check_target(o)) return exit_usage;
    pb::SetVolumeKeyRequest req;
    fill_target(o, req);
    req.set_wrapped_key(o.wrapped_key);
    api_client api(o.api);
    pb::VolumeKey k;
    if (!api.call([&](auto& s, auto* ctx) { return s.SetVolumeKey(ctx, req, &k); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(k));
        return 0;
    }
    std::printf(
        "%s is encrypted (AES-256-XTS) with a data key wrapped by key-encryption key %s; its "
        "shares serve it encrypted from now on\nwrapped key (useless without the KEK; keep it "
        "to move the volume to another engine): %s\n",
        named(o).c_str(), k.kek_id().c_str(), k.wrapped_key().c_str());
    return 0;
}

int key_erase(key_opts& o) {
    if (!check_target(o)) return exit_usage;
    if (!o.yes) {
        fail(fmt::format("erasing the key of {} makes its data unreadable for good: add --yes",
                         named(o)));
        return exit_usage;
    }
    pb::EraseVolumeKeyRequest req;
    fill_target(o, req);
    api_client api(o.api);
    pb::Empty e;
    if (!api.call([&](auto& s, auto* ctx) { return s.EraseVolumeKey(ctx, req, &e); }))
        return exit_failed;
    std::printf("the data key of %s is erased: its data cannot be read any more\n",
                named(o).c_str());
    return 0;
}

// The key of `target` as ListVolumeKeys shows it; false when it has none.
bool find_key(api_client& api, const std::string& target, pb::VolumeKey* out, bool* failed) {
    pb::ListVolumeKeysReply rep;
    *failed = !api.call([&](auto& s, auto* ctx) {
        return s.ListVolumeKeys(ctx, pb::ListVolumeKeysRequest(), &rep);
    });
    if (*failed) return false;
    for (auto& k : rep.keys())
        if (k.target() == target) {
            *out = k;
            return true;
        }
    return false;
}

int key_rotate(key_opts& o) {
    if (!check_target(o)) return exit_usage;
    pb::RotateVolumeKeyRequest req;
    fill_target(o, req);
    if (!o.rate.empty()) {
        uint64_t r = 0;
        if (!parse_size_arg("--rate", o.rate, &r)) return exit_usage;
        if (r == 0) {
            fail("--rate is bytes per second, more than 0 (or --unlimited)");
            return exit_usage;
        }
        req.set_rate_bytes(r);
    }
    req.set_unlimited(o.unlimited);
    api_client api(o.api);
    pb::VolumeKey k;
    if (!api.call([&](auto& s, auto* ctx) { return s.RotateVolumeKey(ctx, req, &k); }))
        return exit_failed;
    if (!o.wait) {
        if (o.as_json) {
            print_json(message_json(k));
            return 0;
        }
        std::printf(
            "%s: its data are being re-encrypted to a new data key (%s); follow it with "
            "weft engine volume-key list\n",
            named(o).c_str(), rotation_text(k.rotation()).c_str());
        return 0;
    }
    // Followed until the new key is the volume's only one.
    const std::string target = k.target();
    progress_line line(o.as_json);
    const auto interval = std::chrono::milliseconds(line.tty() ? 250 : 1000);
    for (;;) {
        bool failed = false;
        if (!find_key(api, target, &k, &failed)) {
            line.end();
            if (!failed) fail(target + " has no key any more (erased?)");
            return exit_failed;
        }
        if (!k.has_rotation()) break;
        if (k.rotation().state() == "stopped") {
            line.end();
            fail(fmt::format("the key rotation of {} {}", named(o), rotation_text(k.rotation())));
            return exit_failed;
        }
        line.show(named(o) + ": re-encrypting " + rotation_text(k.rotation()));
        std::this_thread::sleep_for(interval);
    }
    line.end();
    if (o.as_json) {
        print_json(message_json(k));
        return 0;
    }
    std::printf("%s: every block is under its new data key (wrapped by key-encryption key %s)\n",
                named(o).c_str(), k.kek_id().c_str());
    return 0;
}

int key_list(key_opts& o) {
    api_client api(o.api);
    pb::ListVolumeKeysReply rep;
    if (!api.call([&](auto& s, auto* ctx) {
            return s.ListVolumeKeys(ctx, pb::ListVolumeKeysRequest(), &rep);
        }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(rep));
        return 0;
    }
    if (rep.keys().empty()) {
        std::printf("no encrypted volume here (weft engine volume-key set POOL VOLUME)\n");
        return 0;
    }
    table t({"target", "KEK", "rotation"});
    for (auto& k : rep.keys())
        t.add({k.target(), k.kek_id(), k.has_rotation() ? rotation_text(k.rotation()) : "-"});
    t.print();
    return 0;
}

int key_rewrap(key_opts& o) {
    api_client api(o.api);
    pb::ListVolumeKeysReply rep;
    if (!api.call([&](auto& s, auto* ctx) {
            return s.RewrapVolumeKeys(ctx, pb::RewrapVolumeKeysRequest(), &rep);
        }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(rep));
        return 0;
    }
    std::printf("every data key here is wrapped by the engine's current key-encryption key\n");
    table t({"target", "KEK"});
    for (auto& k : rep.keys()) t.add({k.target(), k.kek_id()});
    t.print();
    return 0;
}

void add_target(CLI::App* sub, key_opts& o) {
    sub->add_option("POOL", o.pool, "the volume's pool");
    sub->add_option("VOLUME", o.name, "the volume's name");
    sub->add_option("--nexus", o.nexus,
                    "a nexus (UUID) instead: encrypted above it, so that its replicas, their "
                    "rebuilds and the wire to them only see ciphertext")
        ->type_name("UUID");
}

}  // namespace

void add_volume_key_commands(CLI::App& app, action_fn& action) {
    auto* vk = app.add_subcommand(
        "volume-key",
        "encryption at rest: a volume's data key (AES-256-XTS), wrapped by the engine's "
        "key-encryption key (weft-engine --kek-file)");
    vk->require_subcommand(1);

    auto s = std::make_shared<key_opts>();
    auto* set = vk->add_subcommand(
        "set",
        "encrypt a volume (or a nexus) from now on: a new data key, or --wrapped-key to give "
        "the one it has elsewhere. Set it before the volume holds data (what it held before "
        "is read as ciphertext); refused while it is shared");
    add_target(set, *s);
    set->add_option("--wrapped-key", s->wrapped_key,
                    "its data key as another engine wrapped it (weft-dek-1:..:), with a KEK "
                    "this engine has too")
        ->type_name("TEXT");
    set->add_flag("--json", s->as_json, "print the key's record as JSON");
    add_api_options(set, s->api);
    set->callback([s, &action] { action = [s] { return key_set(*s); }; });

    auto e = std::make_shared<key_opts>();
    auto* erase = vk->add_subcommand(
        "erase",
        "crypto-erase: forget a volume's data key, so that its data cannot be read by anyone "
        "(refused while shared)");
    add_target(erase, *e);
    erase->add_flag("--yes", e->yes, "yes, its data is to become unreadable");
    add_api_options(erase, e->api);
    erase->callback([e, &action] { action = [e] { return key_erase(*e); }; });

    auto rw = std::make_shared<key_opts>();
    auto* rewrap = vk->add_subcommand(
        "rewrap",
        "KEK rotation: re-wrap every data key with the engine's current key-encryption key "
        "(start weft-engine with --kek-file NEW --kek-file OLD first); the data are not "
        "touched, and afterwards OLD is no longer needed");
    rewrap->add_flag("--json", rw->as_json, "print {\"keys\": [...]}");
    add_api_options(rewrap, rw->api);
    rewrap->callback([rw, &action] { action = [rw] { return key_rewrap(*rw); }; });

    auto r = std::make_shared<key_opts>();
    auto* rotate = vk->add_subcommand(
        "rotate",
        "data-key rotation: a new data key for a volume (or a nexus), and its data re-encrypted "
        "to it in the background while it stays online, shared or not. Progress shows in "
        "`volume-key list`; a rotation survives an engine restart. Asking again while one runs "
        "only changes its rate");
    add_target(rotate, *r);
    rotate
        ->add_option(
            "--rate", r->rate,
            "at most this many bytes per second (default 128MiB), " + std::string(size_examples))
        ->type_name("SIZE");
    rotate->add_flag("--unlimited", r->unlimited, "as fast as the device goes");
    rotate->add_flag("--wait", r->wait,
                     "follow it (progress on one line) until the new key is the only one");
    rotate->add_flag("--json", r->as_json, "print the key's record as JSON");
    add_api_options(rotate, r->api);
    rotate->callback([r, &action] { action = [r] { return key_rotate(*r); }; });

    auto l = std::make_shared<key_opts>();
    auto* list = vk->add_subcommand(
        "list", "show the encrypted volumes, their KEK's id and any key rotation's progress");
    list->add_flag("--json", l->as_json, "print {\"keys\": [...]}");
    add_api_options(list, l->api);
    list->callback([l, &action] { action = [l] { return key_list(*l); }; });
}

}  // namespace weft::cli
