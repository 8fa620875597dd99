// `weft nvme read`, `write` and `verify`: block I/O through one I/O queue.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>

#include "cli/commands.h"
#include "cli/connection.h"
#include "initiator/ns.h"

namespace weft::cli {

namespace {

struct io_opts {
    connection_options c;
    uint64_t lba = 0;
    uint64_t blocks = 1;
    std::string file;     // read: output; write: input
    std::string pattern;  // write/verify: "0xNN" (a byte) or "random"
    uint32_t seed = 1;
};

// Bytes of the "random" pattern: depend on the seed and the absolute byte
// offset, so a verify of any sub-range knows what to expect.
void fill_pattern(std::span<std::byte> buf, const std::string& pattern, uint32_t seed,
                  uint64_t first_byte) {
    if (pattern != "random") {
        auto v = std::byte(std::stoul(pattern, nullptr, 0));
        std::fill(buf.begin(), buf.end(), v);
        return;
    }
    for (size_t i = 0; i < buf.size(); i += 8) {
        uint64_t x = (first_byte + i) ^ (uint64_t(seed) << 40);
        x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33, x *= 0xc4ceb9fe1a85ec53ull,
            x ^= x >> 33;
        for (size_t k = 0; k < 8 && i + k < buf.size(); ++k) buf[i + k] = std::byte(x >> (8 * k));
    }
}

bool valid_pattern(const std::string& p) {
    if (p == "random") return true;
    try {
        size_t used = 0;
        unsigned long v = std::stoul(p, &used, 0);
        return used == p.size() && v <= 0xff;
    } catch (...) {
        return false;
    }
}

void hex_dump(std::span<const std::byte> data, uint64_t base) {
    for (size_t off = 0; off < data.size(); off += 16) {
        std::string hex, text;
        for (size_t i = 0; i < 16; ++i) {
            if (off + i < data.size()) {
                auto b = std::to_integer<unsigned>(data[off + i]);
                hex += fmt::format("{:02x} ", b);
                text += (b >= 0x20 && b < 0x7f) ? char(b) : '.';
            } else {
                hex += "   ";
            }
            if (i == 7) hex += ' ';
        }
        std::printf("%08llx  %s |%s|\n", (unsigned long long)(base + off), hex.c_str(),
                    text.c_str());
    }
}

// A connected controller with one I/O queue and the namespace, range checked.
struct session {
    std::unique_ptr<initiator::controller> ctrl;
    std::unique_ptr<initiator::ns> disk;
};

task<int> open_session(io_opts& o, session& s) {
    initiator::controller_options co;
    std::string why;
    if (!make_controller_options(o.c, co, &why)) {
        fail(why);
        co_return 2;
    }
    co.kato_ms = 0;  // short-lived
    s.ctrl = co_await connect(o.c, co);
    if (!s.ctrl) co_return exit_connect;
    const auto& ids = s.ctrl->namespace_ids();
    if (std::find(ids.begin(), ids.end(), o.c.nsid) == ids.end()) {
        std::string list;
        for (uint32_t id : ids) list += (list.empty() ? "" : ", ") + std::to_string(id);
        fail(fmt::format("namespace {} does not exist on {} (active namespaces: {})", o.c.nsid,
                         o.c.nqn, list.empty() ? "none" : list));
        co_return exit_failed;
    }
    s.disk = std::make_unique<initiator::ns>(*s.ctrl, o.c.nsid);
    uint64_t n = s.disk->num_blocks();
    if (o.blocks == 0 || o.lba >= n || o.blocks > n - o.lba) {
        fail(
            fmt::format("invalid LBA range: {} block(s) at LBA {} do not fit in namespace {} "
                        "({} blocks of {} bytes, LBAs 0-{})",
                        o.blocks, o.lba, o.c.nsid, n, s.disk->block_size(), n ? n - 1 : 0));
        co_return exit_failed;
    }
    co_return 0;
}

// Reads or writes [lba, lba+blocks) in commands of at most MDTS.
task<int> transfer(io_opts& o, session& s, std::vector<std::byte>& buf, bool write) {
    uint32_t bs = s.disk->block_size();
    uint64_t per_cmd =
        std::max<uint64_t>(1, std::min<uint64_t>(s.ctrl->max_transfer() / bs, 65536));
    for (uint64_t done = 0; done < o.blocks;) {
        uint32_t n = uint32_t(std::min(per_cmd, o.blocks - done));
        iovec iov{buf.data() + done * bs, size_t(n) * bs};
        auto r = write ? co_await s.disk->write(o.lba + done, n, {&iov, 1})
                       : co_await s.disk->read(o.lba + done, n, {&iov, 1});
        if (!r) {
            fail(transport_error_sentence(o.c, r.err()));
            co_return exit_failed;
        }
        if (!r->ok()) {
            fail(fmt::format("{} of {} block(s) at LBA {}: {}", write ? "write" : "read", n,
                             o.lba + done, status_sentence(o.c, *r)));
            co_return exit_failed;
        }
        done += n;
    }
    co_return 0;
}

// Deallocates [lba, lba+blocks) (Dataset Management), in ranges of at most
// 2^32 - 1 blocks; the namespace decides what it frees.
task<int> deallocate(io_opts& o, session& s) {
    for (uint64_t done = 0; done < o.blocks;) {
        uint32_t n = uint32_t(std::min<uint64_t>(UINT32_MAX, o.blocks - done));
        auto r = co_await s.disk->deallocate(o.lba + done, n);
        if (!r) {
            fail(transport_error_sentence(o.c, r.err()));
            co_return exit_failed;
        }
        if (!r->ok()) {
            fail(fmt::format("deallocate {} block(s) at LBA {}: {}", n, o.lba + done,
                             status_sentence(o.c, *r)));
            co_return exit_failed;
        }
        done += n;
    }
    std::printf("deallocated %llu block(s) at LBA %llu\n", (unsigned long long)o.blocks,
                (unsigned long long)o.lba);
    co_return 0;
}

enum class io_kind { read, write, verify, deallocate };

task<int> io_main(io_opts* o, io_kind kind) {
    session s;
    int rc = co_await open_session(*o, s);
    if (rc == 0 && kind == io_kind::deallocate) {
        rc = co_await deallocate(*o, s);
    } else if (rc == 0) {
        uint32_t bs = s.disk->block_size();
        std::vector<std::byte> buf(o->blocks * bs);
        if (kind == io_kind::read) {
            rc = co_await transfer(*o, s, buf, false);
            if (rc == 0 && o->file.empty()) hex_dump(buf, o->lba * bs);
            if (rc == 0 && !o->file.empty()) {
                std::ofstream out(o->file, std::ios::binary | std::ios::trunc);
                out.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size()));
                if (!out) {
                    fail(fmt::format("cannot write {}", o->file));
                    rc = exit_failed;
                }
            }
        } else if (kind == io_kind::write && !o->file.empty()) {
            std::ifstream in(o->file, std::ios::binary);
            std::vector<char> data{std::istreambuf_iterator<char>(in), {}};
            if (!in.eof() && !in) {
                fail(fmt::format("cannot read {}", o->file));
                rc = exit_failed;
            } else if (data.size() > buf.size()) {
                fail(fmt::format("{} has {} bytes, more than the {} block(s) of {} bytes to write",
                                 o->file, data.size(), o->blocks, bs));
                rc = exit_failed;
            } else {
                std::memcpy(buf.data(), data.data(), data.size());  // the rest stays zero
                rc = co_await transfer(*o, s, buf, true);
            }
        } else {
            fill_pattern(buf, o->pattern, o->seed, o->lba * bs);
            rc = co_await transfer(*o, s, buf, true);
            if (rc == 0 && kind == io_kind::verify) {
                std::vector<std::byte> back(buf.size());
                rc = co_await transfer(*o, s, back, false);
                if (rc == 0 && back != buf) {
                    size_t at = 0;
                    while (back[at] == buf[at]) ++at;
                    fail(
                        fmt::format("verify failed: the data read back differs from the data "
                                    "written, first at byte {} (LBA {})",
                                    at, o->lba + at / bs));
                    rc = exit_failed;
                }
                if (rc == 0)
                    std::printf("verified %llu block(s) of %u bytes at LBA %llu\n",
                                (unsigned long long)o->blocks, bs, (unsigned long long)o->lba);
            }
        }
        if (rc == 0 && kind == io_kind::write)
            std::printf("wrote %llu block(s) of %u bytes at LBA %llu\n",
                        (unsigned long long)o->blocks, bs, (unsigned long long)o->lba);
    }
    if (s.ctrl) co_await s.ctrl->disconnect();
    co_return rc;
}

CLI::App* add_one(CLI::App& nvme, action_fn& action, const char* name, const char* help,
                  io_kind kind) {
    auto o = std::make_shared<io_opts>();
    auto* sub = nvme.add_subcommand(name, help);
    add_connection_options(sub, o->c);
    sub->add_option("--lba,-l", o->lba, "first logical block")->capture_default_str();
    sub->add_option("--blocks,-c", o->blocks, "number of logical blocks")->capture_default_str();
    if (kind == io_kind::read) {
        sub->add_option("-o,--output", o->file, "write the data to this file (default: hex dump)");
    } else if (kind != io_kind::deallocate) {
        if (kind == io_kind::write)
            sub->add_option("-i,--input", o->file,
                            "write this file's bytes (zero-padded to whole blocks)");
        o->pattern = kind == io_kind::verify ? "random" : "0x00";
        sub->add_option("-p,--pattern", o->pattern,
                        "data to write when no file: a byte (0xa5) or \"random\"")
            ->capture_default_str()
            ->check([](const std::string& p) {
                return valid_pattern(p) ? std::string() : "a byte value 0-255 or \"random\"";
            });
        sub->add_option("--seed", o->seed, "seed of the random pattern")->capture_default_str();
    }
    sub->callback([o, kind, &action] {
        action = [o, kind] {
            return run_on_reactors({-1}, [o, kind] { return io_main(o.get(), kind); });
        };
    });
    return sub;
}

}  // namespace

void add_io_commands(CLI::App& nvme, action_fn& action) {
    add_one(nvme, action, "read", "read blocks to a file or stdout (hex dump)", io_kind::read);
    add_one(nvme, action, "write", "write a file or a pattern to blocks", io_kind::write);
    add_one(nvme, action, "verify",
            "write a pattern to blocks, read it back and compare (destroys their data)",
            io_kind::verify);
    add_one(nvme, action, "deallocate",
            "deallocate blocks (Dataset Management; thin volumes give whole clusters back to "
            "their pool, and read zeroes there after)",
            io_kind::deallocate);
}

}  // namespace weft::cli
