// Where the engine's key-encryption keys come from. A provider hands out the
// KEKs data keys are wrapped with (the first wraps new ones; the others only
// unwrap, after a rotation); the engine asks once at start. Two providers
// to start with: a file (mode 0600) and an environment variable (a
// Kubernetes Secret mounted either way); a KMS is one more implementation
// of the same interface (it would unwrap remotely instead of handing out a
// key, which this interface leaves room for by returning keks by value).
//
//   auto p = make_kek_file_provider("/etc/weft/kek");
//   auto keks = p->keks(&why);     // EINVAL, ENOENT, ... with a sentence
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "auth/data_key.h"
#include "runtime/result.h"

namespace weft::auth {

class key_provider {
  public:
    virtual ~key_provider() = default;
    // Where the keys come from, for messages ("file /etc/weft/kek").
    virtual std::string describe() const = 0;
    // The KEKs, checked; a sentence in `why` (never a key) on failure.
    // `exposed`: set when the source can be read by other users.
    virtual result<std::vector<kek>> keks(std::string* why, bool* exposed) = 0;
};

// One KEK from a file ("-": standard input).
std::unique_ptr<key_provider> make_kek_file_provider(std::string path);
// One KEK from an environment variable holding its text (weft-kek-1:...),
// which is removed from the environment once read.
std::unique_ptr<key_provider> make_kek_env_provider(std::string name);

}  // namespace weft::auth
