// Crash safety: a child process runs a workload (create, delete, resize,
// snapshot, writes) against a pool in a file through the uring bdev, logging
// "B <op>" before each operation and "E" once it is acknowledged and durable
// (FUA, or a flush). The parent SIGKILLs it at a random moment, reopens the
// pool, and checks: it imports; every volume the log says exists is there,
// whole, with its size; nothing else is there but the one operation in
// flight; and every acknowledged write reads back (the write in flight may
// read old or new).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "pool_test_util.h"

namespace weft::pool::test {
namespace {

constexpr uint64_t file_bytes = 32 << 20;
constexpr uint64_t blk = 4096;  // unit of the workload's writes

struct model_volume {
    uint64_t size = 0;
    bool snapshot = false;
    std::map<uint64_t, uint8_t> blocks;  // offset -> seed of the last acknowledged write
};

struct op {
    char kind = 0;  // C create, D delete, R resize, S snapshot, W write
    std::string name, arg2;
    uint64_t a = 0, b = 0;
};

op parse(const std::string& line) {
    std::istringstream in(line);
    std::string tag;
    op o;
    in >> tag >> o.kind >> o.name;
    if (o.kind == 'S')
        in >> o.arg2;
    else
        in >> o.a >> o.b;
    return o;
}

void apply_op(std::map<std::string, model_volume>& m, const op& o) {
    switch (o.kind) {
        case 'C':
            m[o.name] = model_volume{o.a, false, {}};
            break;
        case 'D':
            m.erase(o.name);
            break;
        case 'R':
            m[o.name].size = o.a;
            break;
        case 'S': {
            model_volume s = m[o.name];
            s.snapshot = true;
            m[o.arg2] = s;
            break;
        }
        case 'W':
            m[o.name].blocks[o.a] = uint8_t(o.b);
            break;
    }
}

// The child: never returns.
[[noreturn]] void child(const std::string& path, const std::string& log, unsigned seed) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    auto say = [fd](const std::string& s) {
        std::string l = s + "\n";
        if (::write(fd, l.data(), l.size()) != ssize_t(l.size())) _exit(3);
    };
    run_reactors(1, [&]() -> task<void> {
        bdev::uring_options uo{.create = true, .create_bytes = file_bytes};
        auto dev = std::shared_ptr<bdev::bdev>(bdev::open_uring_bdev("f", path, uo).value());
        auto opts = small_opts();
        auto p = (co_await pool::create(dev, "crash", opts)).value();
        say("P");
        std::mt19937 rng(seed);
        std::map<std::string, model_volume> m;
        std::map<std::string, uuid> ids;
        std::map<std::string, std::unique_ptr<bdev::channel>> chans;
        std::vector<std::shared_ptr<bdev::bdev>> keep;
        int next = 0;
        for (int n = 0; n < 100000; ++n) {
            std::vector<std::string> writable, all;
            for (auto& [k, v] : m) {
                all.push_back(k);
                if (!v.snapshot) writable.push_back(k);
            }
            unsigned r = rng() % 100;
            op o;
            if (writable.empty() || (r < 8 && all.size() < 8)) {
                o = {'C', "v" + std::to_string(next++), "", (4 + rng() % 12) * small_cluster,
                     rng() % 2};
            } else if (r < 14) {
                o = {'D', all[rng() % all.size()], "", 0, 0};
            } else if (r < 20) {
                auto& k = writable[rng() % writable.size()];
                o = {'R', k, "", m[k].size + (1 + rng() % 4) * small_cluster, 0};
            } else if (r < 26 && all.size() < 8) {
                o = {'S', writable[rng() % writable.size()], "s" + std::to_string(next++), 0, 0};
            } else {
                auto& k = writable[rng() % writable.size()];
                o = {'W', k, "", rng() % (m[k].size / blk) * blk, 1 + rng() % 250};
            }
            std::string line =
                std::string("B ") + o.kind + " " + o.name + " " +
                (o.kind == 'S' ? o.arg2 : std::to_string(o.a) + " " + std::to_string(o.b));
            say(line);
            bool ok = true;
            if (o.kind == 'C') {
                auto id = co_await p->create_volume(o.name, o.a, o.b != 0);
                ok = id.ok();
                if (ok) ids[o.name] = id.value();
            } else if (o.kind == 'D') {
                chans.erase(o.name);
                ok = (co_await p->delete_volume(ids[o.name])).ok();
            } else if (o.kind == 'R') {
                ok = (co_await p->resize_volume(ids[o.name], o.a)).ok();
            } else if (o.kind == 'S') {
                auto id = co_await p->snapshot(ids[o.name], o.arg2);
                ok = id.ok();
                if (ok) ids[o.arg2] = id.value();
            } else {
                auto& ch = chans[o.name];
                if (!ch) {
                    keep.push_back(p->open_volume(ids[o.name]).value());
                    ch = keep.back()->open_channel();
                }
                bool fua = rng() % 2;
                int rc = co_await put(*ch, 512, o.a, blk, uint8_t(o.b), fua);
                if (rc == 0 && !fua) rc = co_await ch->flush();
                ok = rc == 0;
            }
            if (!ok) _exit(4);  // the pool is sized so that nothing fails
            apply_op(m, o);
            say("E");
        }
        _exit(0);
    });
    _exit(0);
}

TEST(pool_crash, sigkill_at_random_points_loses_nothing_acknowledged) {
    const char* dir = std::getenv("TMPDIR");
    std::string base =
        std::string(dir && *dir ? dir : "/tmp") + "/weft-pool-crash-" + std::to_string(getpid());
    std::mt19937 rng(std::random_device{}());
    int iterations = 20, checked_ops = 0, checked_writes = 0;
    for (int it = 0; it < iterations; ++it) {
        std::string path = base + ".img", log = base + ".log";
        ::unlink(path.c_str());
        unsigned seed = rng();
        int delay_ms = 20 + int(rng() % 300);
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) child(path, log, seed);
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);

        // Replay the log: committed state, plus the one operation in flight.
        std::ifstream in(log);
        std::string line;
        bool created = false;
        std::map<std::string, model_volume> m;
        std::optional<op> pending;
        while (std::getline(in, line)) {
            if (in.eof()) break;  // a line cut by the kill: its op is not acknowledged
            if (line == "P") created = true;
            if (line[0] == 'B') pending = parse(line);
            if (line == "E") {
                apply_op(m, *pending);
                pending.reset();
                ++checked_ops;
            }
        }
        // A cut "B" line still means the op may have started; we only know
        // the kind was not acknowledged, which the checks below allow.
        bool last_cut = !line.empty() && line[0] == 'B';
        SCOPED_TRACE("iteration " + std::to_string(it) + ", killed after " +
                     std::to_string(delay_ms) + " ms, " + std::to_string(m.size()) + " volumes");

        run_reactors(1, [&]() -> task<void> {
            auto dev = bdev::open_uring_bdev("f", path);
            if (!dev) {
                EXPECT_FALSE(created);  // killed before the file existed
                co_return;
            }
            std::shared_ptr<bdev::bdev> d(std::move(dev.value()));
            std::string why;
            auto p = co_await pool::open(d, &why);
            if (!created) co_return;  // either outcome is fine
            CO_ASSERT_TRUE(p);
            auto list = co_await p.value()->list();
            std::map<std::string, volume_info> found;
            for (auto& v : list) found[v.name] = v;
            auto pending_is = [&](char k, const std::string& name) {
                return pending && pending->kind == k &&
                       (pending->name == name || (k == 'S' && pending->arg2 == name));
            };
            for (auto& [name, mv] : m) {
                if (!found.count(name)) {
                    EXPECT_TRUE(pending_is('D', name)) << "lost volume " << name;
                    continue;
                }
                auto& v = found[name];
                bool grown = pending_is('R', name) && v.size_bytes == pending->a;
                EXPECT_TRUE(v.size_bytes == mv.size || grown) << name << " size " << v.size_bytes;
                EXPECT_EQ(v.snapshot, mv.snapshot) << name;
                auto vol = p.value()->open_volume(v.id).value();
                auto ch = vol->open_channel();
                for (auto& [off, s] : mv.blocks) {
                    long bad = co_await check(*ch, 512, off, blk, s);
                    if (bad && pending_is('W', name) && pending->a == off)
                        bad = co_await check(*ch, 512, off, blk, uint8_t(pending->b));
                    EXPECT_EQ(bad, 0) << name << " block at " << off;
                    ++checked_writes;
                }
                ch.reset();
            }
            for (auto& [name, v] : found) {
                if (m.count(name)) continue;
                // Only the operation in flight may have made it, and whole.
                bool ok = pending_is('C', name) || pending_is('S', name) || last_cut;
                EXPECT_TRUE(ok) << "unexpected volume " << name;
                if (pending_is('C', name)) {
                    EXPECT_EQ(v.size_bytes, pending->a);
                }
            }
        });
        ::unlink(path.c_str());
        ::unlink(log.c_str());
    }
    std::printf("crash test: %d iterations, %d acknowledged operations, %d writes checked\n",
                iterations, checked_ops, checked_writes);
}

}  // namespace
}  // namespace weft::pool::test
