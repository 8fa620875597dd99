#include "cli/secret_file.h"

#include <cstdio>

#include "auth/dhchap_key.h"

namespace weft::cli {

auth::secret_string read_secret_file(const std::string& path, const char* what, std::string* why) {
    bool exposed = false;
    auto s = auth::read_dhchap_key_file(path, what, why, &exposed);
    if (exposed)
        std::fprintf(stderr,
                     "weft: warning: %s can be read by other users; a secret file should be "
                     "mode 0600\n",
                     path.c_str());
    return s;
}

}  // namespace weft::cli
