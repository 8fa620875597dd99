#include "cli/secret_file.h"

#include <cstdio>

#include "auth/dhchap_key.h"
#include "auth/tls_psk.h"

namespace weft::cli {

namespace {

auth::secret_string warn_if_exposed(auth::secret_string s, bool exposed, const std::string& path) {
    if (exposed)
        std::fprintf(stderr,
                     "weft: warning: %s can be read by other users; a secret file should be "
                     "mode 0600\n",
                     path.c_str());
    return s;
}

}  // namespace

auth::secret_string read_secret_file(const std::string& path, const char* what, std::string* why) {
    bool exposed = false;
    auto s = auth::read_dhchap_key_file(path, what, why, &exposed);
    return warn_if_exposed(std::move(s), exposed, path);
}

auth::secret_string read_tls_key_file(const std::string& path, const char* what, std::string* why) {
    bool exposed = false;
    auto s = auth::read_tls_key_file(path, what, why, &exposed);
    return warn_if_exposed(std::move(s), exposed, path);
}

}  // namespace weft::cli
