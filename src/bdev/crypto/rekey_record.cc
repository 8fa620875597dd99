#include "bdev/crypto/rekey_record.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

namespace weft::bdev {

namespace {

constexpr char magic[8] = {'W', 'E', 'F', 'T', 'R', 'K', 'Y', '1'};
constexpr size_t head_bytes = 8 + 8 + 4 + 4 + 8;

block_digest sha256_16(const void* p, size_t n) {
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    block_digest d{};
    if (EVP_Digest(p, n, md, &len, EVP_sha256(), nullptr) == 1) std::memcpy(d.data(), md, d.size());
    return d;
}

void put(std::string& s, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) s.push_back(char(uint8_t(v >> (8 * i))));
}

uint64_t get(const uint8_t* p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t(p[i]) << (8 * i);
    return v;
}

}  // namespace

block_hasher::block_hasher()
    : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx_(EVP_MD_CTX_new()) {}

block_hasher::~block_hasher() {
    EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
    EVP_MD_free(static_cast<EVP_MD*>(md_));
}

bool block_hasher::digest(std::span<const uint8_t> block, block_digest* out) {
    auto* c = static_cast<EVP_MD_CTX*>(ctx_);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (!md_ || !c || EVP_DigestInit_ex2(c, static_cast<EVP_MD*>(md_), nullptr) != 1 ||
        EVP_DigestUpdate(c, block.data(), block.size()) != 1 ||
        EVP_DigestFinal_ex(c, md, &len) != 1 || len < out->size())
        return false;
    std::memcpy(out->data(), md, out->size());
    return true;
}

std::array<uint8_t, 8> rekey_key_tag(std::span<const uint8_t> key) {
    static constexpr char label[] = "weft rekey record";
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    std::array<uint8_t, 8> tag{};
    if (HMAC(EVP_sha256(), key.data(), int(key.size()), reinterpret_cast<const uint8_t*>(label),
             sizeof label - 1, md, &len) &&
        len >= tag.size())
        std::memcpy(tag.data(), md, tag.size());
    return tag;
}

std::string encode(const rekey_record& r) {
    std::string s(magic, sizeof magic);
    put(s, r.lba, 8);
    put(s, r.blocks, 4);
    put(s, r.block_size, 4);
    s.append(reinterpret_cast<const char*>(r.key_tag.data()), r.key_tag.size());
    for (auto& d : r.digests) s.append(reinterpret_cast<const char*>(d.data()), d.size());
    block_digest sum = sha256_16(s.data(), s.size());
    s.append(reinterpret_cast<const char*>(sum.data()), sum.size());
    return s;
}

std::optional<rekey_record> parse_rekey_record(std::span<const uint8_t> b, std::string* why) {
    auto refuse = [&](const char* msg) -> std::optional<rekey_record> {
        if (why) *why = msg;
        return std::nullopt;
    };
    if (b.size() < head_bytes + 16 || std::memcmp(b.data(), magic, sizeof magic) != 0)
        return refuse("not a rekey record");
    rekey_record r;
    r.lba = get(b.data() + 8, 8);
    r.blocks = uint32_t(get(b.data() + 16, 4));
    r.block_size = uint32_t(get(b.data() + 20, 4));
    std::memcpy(r.key_tag.data(), b.data() + 24, r.key_tag.size());
    if (r.blocks == 0 || r.blocks > rekey_record_max_blocks)
        return refuse("a rekey record of no block or too many");
    if (r.block_size < 512 || (r.block_size & (r.block_size - 1)) != 0)
        return refuse("a rekey record with a bad block size");
    if (r.lba > UINT64_MAX - r.blocks) return refuse("a rekey record past the end of any device");
    const size_t body = head_bytes + size_t(r.blocks) * 16;
    if (b.size() != body + 16) return refuse("a rekey record of the wrong length");
    block_digest sum = sha256_16(b.data(), body);
    if (std::memcmp(sum.data(), b.data() + body, sum.size()) != 0)
        return refuse("a damaged rekey record (its checksum does not match)");
    r.digests.resize(r.blocks);
    const uint8_t* p = b.data() + head_bytes;
    for (auto& d : r.digests) {
        std::memcpy(d.data(), p, d.size());
        p += d.size();
    }
    return r;
}

}  // namespace weft::bdev
