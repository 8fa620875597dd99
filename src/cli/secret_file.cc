#include "cli/secret_file.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cstdio>

#include "auth/dhchap_key.h"

namespace weft::cli {

auth::secret_string read_secret_file(const std::string& path, const char* what, std::string* why) {
    if (path != "-") {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077))
            std::fprintf(stderr,
                         "weft: warning: %s can be read by other users; a secret file should be "
                         "mode 0600\n",
                         path.c_str());
    }
    // A secret is ~100 bytes; 4 KiB leaves room for a comment-free file.
    auto s = auth::read_file_wiped(path, 4096);
    if (!s) {
        *why = fmt::format("cannot read the {} from {}: {}", what, path,
                           s.err().code == EFBIG ? "too large for a secret" : s.err().message());
        return {};
    }
    std::string w;
    if (!auth::parse_dhchap_key(s->view(), &w)) {
        *why = fmt::format("the {} in {}: {}", what, path, w);
        return {};
    }
    return std::move(s.value());
}

}  // namespace weft::cli
