// The embedded store: one SQLite file in WAL mode, synchronous=FULL so that
// a change the API acknowledged survives a power cut. Two connections, each
// behind its mutex: one writes, one reads, so that reads do not wait for a
// commit's fsync (WAL lets a reader go on while a writer commits).
#include <sqlite3.h>

#include <mutex>

#include <fmt/format.h>

#include "control/store.h"

namespace weft::control {

namespace {

class sqlite_store final : public store {
  public:
    explicit sqlite_store(const std::string& path) : path_(path) {
        int rc = sqlite3_open_v2(path.c_str(), &db_,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                                 nullptr);
        if (rc != SQLITE_OK) {
            std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
            sqlite3_close(db_);
            db_ = nullptr;
            throw store_error(fmt::format("cannot open the store {}: {}", path, msg));
        }
        sqlite3_busy_timeout(db_, 5000);
        exec("PRAGMA journal_mode=WAL");
        exec("PRAGMA synchronous=FULL");
        exec(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, "
            "revision INTEGER NOT NULL) WITHOUT ROWID");
        exec("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)");
        exec("INSERT OR IGNORE INTO meta VALUES ('revision', 0)");
        if (sqlite3_open_v2(path.c_str(), &rdb_, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX,
                            nullptr) != SQLITE_OK) {
            std::string msg = rdb_ ? sqlite3_errmsg(rdb_) : "cannot open";
            sqlite3_close(rdb_);
            sqlite3_close(db_);
            throw store_error(fmt::format("cannot open the store {} to read: {}", path, msg));
        }
        sqlite3_busy_timeout(rdb_, 5000);
    }
    ~sqlite_store() override {
        sqlite3_close(rdb_);
        sqlite3_close(db_);
    }

    std::optional<kv> get(const std::string& key) override {
        std::lock_guard g(rmu_);
        stmt s(*this, rdb_, "SELECT value, revision FROM kv WHERE key = ?1");
        s.bind(1, key);
        if (!s.step()) return std::nullopt;
        return kv{key, s.text(0), s.i64(1)};
    }

    std::vector<kv> list(const std::string& prefix) override {
        std::lock_guard g(rmu_);
        // A range scan: [prefix, prefix + 0xff) covers every key under it.
        stmt s(*this, rdb_,
               "SELECT key, value, revision FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key");
        s.bind(1, prefix);
        s.bind(2, prefix + "\xff");
        std::vector<kv> out;
        while (s.step()) out.push_back(kv{s.text(0), s.text(1), s.i64(2)});
        return out;
    }

    std::optional<int64_t> commit(const txn& t) override {
        std::lock_guard g(mu_);
        exec("BEGIN IMMEDIATE");
        try {
            for (auto& c : t.compares) {
                stmt s(*this, db_, "SELECT revision FROM kv WHERE key = ?1");
                s.bind(1, c.key);
                int64_t rev = s.step() ? s.i64(0) : 0;
                if (rev != c.revision) {
                    exec("ROLLBACK");
                    return std::nullopt;
                }
            }
            int64_t rev = revision_of(db_) + 1;
            for (auto& [k, v] : t.puts) {
                stmt s(*this, db_, "INSERT OR REPLACE INTO kv VALUES (?1, ?2, ?3)");
                s.bind(1, k);
                s.bind(2, v);
                s.bind(3, rev);
                s.step();
            }
            for (auto& k : t.deletes) {
                stmt s(*this, db_, "DELETE FROM kv WHERE key = ?1");
                s.bind(1, k);
                s.step();
            }
            stmt s(*this, db_, "UPDATE meta SET value = ?1 WHERE name = 'revision'");
            s.bind(1, rev);
            s.step();
            exec("COMMIT");
            return rev;
        } catch (...) {
            sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
            throw;
        }
    }

    int64_t revision() override {
        std::lock_guard g(rmu_);
        return revision_of(rdb_);
    }

    std::string describe() const override { return "sqlite:" + path_; }

  private:
    struct stmt {
        stmt(sqlite_store& st, sqlite3* db, const char* sql) : db(db) {
            if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) st.fail(db, "prepare");
        }
        ~stmt() { sqlite3_finalize(s); }
        void bind(int i, const std::string& v) {
            sqlite3_bind_text(s, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
        }
        void bind(int i, int64_t v) { sqlite3_bind_int64(s, i, v); }
        bool step() {
            int rc = sqlite3_step(s);
            if (rc == SQLITE_ROW) return true;
            if (rc == SQLITE_DONE) return false;
            throw store_error(fmt::format("store: {}", sqlite3_errmsg(db)));
        }
        std::string text(int col) {
            auto p = reinterpret_cast<const char*>(sqlite3_column_blob(s, col));
            return std::string(p ? p : "", size_t(sqlite3_column_bytes(s, col)));
        }
        int64_t i64(int col) { return sqlite3_column_int64(s, col); }
        sqlite3* db;
        sqlite3_stmt* s = nullptr;
    };

    int64_t revision_of(sqlite3* db) {
        stmt s(*this, db, "SELECT value FROM meta WHERE name = 'revision'");
        return s.step() ? s.i64(0) : 0;
    }
    void exec(const char* sql) {
        char* err = nullptr;
        if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
            std::string msg = err ? err : "unknown error";
            sqlite3_free(err);
            throw store_error(fmt::format("store {}: {}: {}", path_, sql, msg));
        }
    }
    [[noreturn]] void fail(sqlite3* db, const char* what) {
        throw store_error(fmt::format("store {}: {}: {}", path_, what, sqlite3_errmsg(db)));
    }

    std::string path_;
    sqlite3* db_ = nullptr;   // writes (commit)
    sqlite3* rdb_ = nullptr;  // reads
    std::mutex mu_, rmu_;
};

}  // namespace

std::unique_ptr<store> open_sqlite_store(const std::string& path) {
    return std::make_unique<sqlite_store>(path);
}

}  // namespace weft::control
