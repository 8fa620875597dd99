#include "cli/secret_file.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>

#include "auth/dhchap_key.h"

namespace weft::cli {

auth::secret_string read_secret_file(const std::string& path, const char* what, std::string* why) {
    std::string text;
    if (path == "-") {
        text.assign(std::istreambuf_iterator<char>(std::cin), {});
    } else {
        FILE* f = std::fopen(path.c_str(), "re");
        if (!f) {
            *why = fmt::format("cannot read the {} from {}: {}", what, path, std::strerror(errno));
            return {};
        }
        struct stat st {};
        if (::fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
            std::fprintf(stderr,
                         "weft: warning: %s can be read by other users; a secret file should be "
                         "mode 0600\n",
                         path.c_str());
        char buf[512];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
        OPENSSL_cleanse(buf, sizeof buf);
        std::fclose(f);
    }
    auth::secret_string s(text);
    OPENSSL_cleanse(text.data(), text.size());
    std::string w;
    if (!auth::parse_dhchap_key(s.view(), &w)) {
        *why = fmt::format("the {} in {}: {}", what, path, w);
        return {};
    }
    return s;
}

}  // namespace weft::cli
