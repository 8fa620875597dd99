#include "csi/names.h"

#include <openssl/evp.h>

#include <array>
#include <cstdint>

namespace weft::csi {
namespace {

// The name space of weft-csi's version 5 UUIDs (a random UUID, fixed
// forever: changing it would orphan every volume made before).
constexpr pool::uuid weft_csi_namespace = {0x5b, 0x0e, 0x7d, 0x3c, 0x91, 0x2a, 0x4f, 0x6e,
                                           0xa8, 0x1d, 0x44, 0xc2, 0x9b, 0x37, 0x60, 0xf1};

// The kind keeps a volume and a snapshot of the same name apart.
std::string named(std::string_view kind, std::string_view name) {
    std::string s(kind);
    s += '/';
    s += name;
    return uuid_v5(weft_csi_namespace, s);
}

constexpr std::string_view host_nqn_prefix = "nqn.2026-11.io.weft:node:";

}  // namespace

// RFC 9562 §5.5: SHA-1 over the name space and the name; the first 16
// bytes, with the version (5) and the variant (10) set.
std::string uuid_v5(const pool::uuid& ns, std::string_view name) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned len = 0;
    EVP_MD_CTX* c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha1(), nullptr);
    EVP_DigestUpdate(c, ns.data(), ns.size());
    EVP_DigestUpdate(c, name.data(), name.size());
    EVP_DigestFinal_ex(c, md.data(), &len);
    EVP_MD_CTX_free(c);
    pool::uuid u;
    for (size_t i = 0; i < u.size(); ++i) u[i] = md[i];
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    return pool::to_string(u);
}

std::string volume_id_of(std::string_view name) {
    return named("volume", name);
}
std::string snapshot_id_of(std::string_view name) {
    return named("snapshot", name);
}
std::string clone_snapshot_id_of(std::string_view volume_id) {
    return named("clone-source", volume_id);
}

bool is_weft_id(std::string_view s) {
    auto u = pool::parse_uuid(s);
    return u && pool::to_string(*u) == s;
}

std::string host_id_of(std::string_view host_nqn) {
    constexpr std::string_view uuid_form = "nqn.2014-08.org.nvmexpress:uuid:";
    if (host_nqn.starts_with(uuid_form)) {
        auto u = pool::parse_uuid(host_nqn.substr(uuid_form.size()));
        if (u) return pool::to_string(*u);
    }
    return named("host", host_nqn);
}

std::string host_nqn_of(std::string_view node_id) {
    return std::string(host_nqn_prefix) + std::string(node_id);
}

std::optional<std::string> node_of_host_nqn(std::string_view nqn) {
    if (!nqn.starts_with(host_nqn_prefix) || nqn.size() == host_nqn_prefix.size())
        return std::nullopt;
    return std::string(nqn.substr(host_nqn_prefix.size()));
}

}  // namespace weft::csi
