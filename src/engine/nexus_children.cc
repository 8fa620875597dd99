#include "engine/nexus_children.h"

#include <fmt/format.h>
#include <sys/random.h>

#include <filesystem>
#include <fstream>

#include "nexus/child_uri.h"
#include "nexus/nvmf_child.h"

namespace weft::engine {
namespace {

// A volume of one of this engine's pools, behind its fault switch.
class pool_child final : public nexus::child_device {
  public:
    pool_child(std::string uri, nexus::child_uri u, child_sources src)
        : uri_(std::move(uri)), u_(std::move(u)), src_(std::move(src)) {}

    const std::string& uri() const override { return uri_; }
    bool local() const override { return true; }

    task<result<std::shared_ptr<bdev::bdev>>> open(std::string* why) override {
        auto p = src_.find_pool(u_.pool);
        if (!p) {
            *why = fmt::format("{}: no pool named \"{}\" on this engine", uri_, u_.pool);
            co_return error{ENOENT};
        }
        auto id = p->find(u_.volume);
        if (!id) {
            *why = fmt::format("{}: pool \"{}\" has no volume \"{}\"", uri_, u_.pool, u_.volume);
            co_return error{ENOENT};
        }
        auto vols = co_await p->list();
        for (auto& v : vols)
            if (v.id == *id && v.read_only) {
                *why = fmt::format("{}: \"{}\" is read-only (a snapshot?)", uri_, u_.volume);
                co_return error{EROFS};
            }
        auto dev = p->open_volume(*id);
        if (!dev) {
            *why = fmt::format("{}: {}", uri_, dev.err().message());
            co_return dev.err();
        }
        co_return bdev::make_error_bdev(dev.value(), src_.faults(u_.pool, u_.volume));
    }
    task<void> close() override { co_return; }

  private:
    std::string uri_;
    nexus::child_uri u_;
    child_sources src_;
};

bool parse_hex_uuid(std::string_view s, initiator::host_id& out) {
    std::string hex;
    for (char c : s)
        if (c != '-') hex += c;
    if (hex.size() != 32) return false;
    for (size_t i = 0; i < 16; ++i) {
        unsigned v = 0;
        if (std::sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1) return false;
        out[i] = uint8_t(v);
    }
    return true;
}

}  // namespace

result<host_identity> load_host_identity(const std::string& data_dir, const std::string& flag,
                                         std::string* why) {
    host_identity h;
    h.nqn = flag;
    std::string path = data_dir + "/host-nqn";
    if (h.nqn.empty()) {
        std::ifstream in(path);
        std::getline(in, h.nqn);
    }
    if (h.nqn.empty()) {
        uint8_t u[16];
        if (::getrandom(u, sizeof u, 0) != sizeof u) {
            *why = "getrandom failed";
            return error{EIO};
        }
        u[6] = uint8_t((u[6] & 0x0f) | 0x40);
        u[8] = uint8_t((u[8] & 0x3f) | 0x80);
        h.nqn = fmt::format(
            "nqn.2014-08.org.nvmexpress:uuid:{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-"
            "{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
            u[14], u[15]);
        std::error_code ec;
        std::filesystem::create_directories(data_dir, ec);
        std::ofstream out(path);
        out << h.nqn << "\n";
        if (!out) {
            *why = path + ": cannot be written";
            return error{EIO};
        }
    }
    auto pos = h.nqn.find(":uuid:");
    if (pos == std::string::npos ||
        !parse_hex_uuid(std::string_view(h.nqn).substr(pos + 6), h.id)) {
        uint64_t a = 1469598103934665603ull, b = 0x9E3779B97F4A7C15ull;
        for (unsigned char ch : h.nqn) {
            a = (a ^ ch) * 1099511628211ull;
            b = (b ^ ch) * 0x100000001B3ull + 7;
        }
        std::memcpy(h.id.data(), &a, 8);
        std::memcpy(h.id.data() + 8, &b, 8);
    }
    return h;
}

nexus::child_factory make_child_factory(child_sources src, std::chrono::milliseconds io_timeout) {
    return [src = std::move(src), io_timeout](
               const std::string& uri,
               std::string* why) -> result<std::unique_ptr<nexus::child_device>> {
        auto u = nexus::parse_child_uri(uri, why);
        if (!u) return u.err();
        if (u->k == nexus::child_uri::kind::pool)
            return std::unique_ptr<nexus::child_device>(
                new pool_child(nexus::to_string(u.value()), u.value(), src));
        nexus::nvmf_child_options o;
        o.hostnqn = src.host.nqn;
        o.hostid = src.host.id;
        o.dhchap = src.host.dhchap;
        o.tls_key = src.host.tls_key;
        o.io_timeout = io_timeout;
        return nexus::make_nvmf_child(u.value(), o);
    };
}

}  // namespace weft::engine
