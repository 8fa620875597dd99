// A data-key rotation's journal: one file per volume next to the engine's
// state (rekey-<target>.journal), holding the record of the chunk being
// re-encrypted (bdev/crypto/rekey_record.h), replaced atomically before
// each chunk is written. It is how far the rotation got: the blocks before
// its chunk are under the new key, and its digests tell which blocks of the
// chunk are. No journal: the rotation wrote nothing yet.
//
//   rekey_journal j(data_dir, "pool/vol");
//   j.save(encode(record), &why);                 // blocking (in_thread)
//   auto r = j.load(&why);                        // nullopt: no journal
#pragma once

#include <optional>
#include <string>

#include "bdev/crypto/rekey_record.h"
#include "runtime/result.h"

namespace weft::engine {

class rekey_journal {
  public:
    rekey_journal(const std::string& dir, const std::string& target);
    const std::string& path() const { return path_; }
    // The record, nullopt when there is no journal; EUCLEAN with a sentence
    // when it cannot be read or is damaged.
    result<std::optional<bdev::rekey_record>> load(std::string* why) const;
    // Durable when it returns true (blocking).
    bool save(const std::string& encoded, std::string* why) const;
    // Gone (blocking); false with a sentence when it stays.
    bool remove(std::string* why) const;

  private:
    std::string path_;
};

}  // namespace weft::engine
