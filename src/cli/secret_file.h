// Reading a DH-HMAC-CHAP secret or a TLS key from a file ("-": standard
// input), for the commands that take one. Secrets come from files, never from the command
// line, where other users of the machine could read them in the process
// list. A file readable by others is used with a warning.
#pragma once

#include <string>

#include "auth/secret.h"

namespace weft::cli {

// The secret, checked (DHHC-1 format and CRC); empty with a sentence in
// `why` (naming `what`, never the secret) on failure.
auth::secret_string read_secret_file(const std::string& path, const char* what, std::string* why);
// The same for a TLS key (NVMeTLSkey-1 format and CRC).
auth::secret_string read_tls_key_file(const std::string& path, const char* what, std::string* why);

}  // namespace weft::cli
