// Files the engine keeps (its state, a rotation's journal) written so that
// a crash leaves the old or the new file, never a mix: a temporary file,
// fsynced, renamed over the old one, and the directory fsynced. Blocking:
// reactors call it through in_thread().
#pragma once

#include <string>

namespace weft::engine {

// Writes `text` to `path` (mode 0600); false with a sentence in `why`.
bool write_atomically(const std::string& path, const std::string& text, std::string* why);

}  // namespace weft::engine
