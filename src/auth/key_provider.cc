#include "auth/key_provider.h"

#include <openssl/crypto.h>

#include <cstdlib>
#include <cstring>

namespace weft::auth {

namespace {

class file_provider final : public key_provider {
  public:
    explicit file_provider(std::string path) : path_(std::move(path)) {}
    std::string describe() const override { return "file " + path_; }
    result<std::vector<kek>> keks(std::string* why, bool* exposed) override {
        auto text = read_kek_file(path_, "key-encryption key", why, exposed);
        if (text.empty()) return error{EINVAL};
        std::vector<kek> out;
        out.push_back(parse_kek(text.view(), nullptr).value());
        return out;
    }

  private:
    std::string path_;
};

class env_provider final : public key_provider {
  public:
    explicit env_provider(std::string name) : name_(std::move(name)) {}
    std::string describe() const override { return "environment variable " + name_; }
    result<std::vector<kek>> keks(std::string* why, bool* exposed) override {
        if (exposed) *exposed = false;
        char* v = std::getenv(name_.c_str());
        if (!v) {
            if (why) *why = "the environment has no " + name_;
            return error{ENOENT};
        }
        secret_string text{std::string_view(v)};
        // Gone from this process's environment (children do not inherit
        // it); the bytes in place are wiped first.
        OPENSSL_cleanse(v, std::strlen(v));
        ::unsetenv(name_.c_str());
        std::string w;
        auto k = parse_kek(text.view(), &w);
        if (!k) {
            if (why) *why = name_ + ": " + w;
            return error{EINVAL};
        }
        std::vector<kek> out;
        out.push_back(std::move(*k));
        return out;
    }

  private:
    std::string name_;
};

}  // namespace

std::unique_ptr<key_provider> make_kek_file_provider(std::string path) {
    return std::make_unique<file_provider>(std::move(path));
}

std::unique_ptr<key_provider> make_kek_env_provider(std::string name) {
    return std::make_unique<env_provider>(std::move(name));
}

}  // namespace weft::auth
