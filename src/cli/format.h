// What the `weft` commands print and parse: sizes ("10GiB" <-> "10.00 GiB"),
// rates and durations, and tables with aligned columns.
//
//   auto n = parse_size("512MiB");  // 536870912
//   table t({"name", "size"}, "lr");  // size right-aligned
//   t.add({"v1", human_bytes(n.value())});
//   t.print();
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/result.h"

namespace weft::cli {

// Bytes from "4096", "4k", "512MiB", "1G", "1.5GiB" (units k, m, g, t, p,
// with or without "iB", any case, powers of 1024; "B" alone is bytes).
// EINVAL for anything else or a fraction of a byte, ERANGE past 2^64-1.
result<uint64_t> parse_size(const std::string& s);
// What a size must look like, for error sentences.
inline constexpr const char* size_examples = "like 10GiB, 512MiB, 1G, 4k or 4096";

// parse_size for the command-line argument `name`: false after printing
// "weft: NAME "S" is not a size (like ...)" when `s` is not one.
bool parse_size_arg(const std::string& name, const std::string& s, uint64_t* out);

// "512 B", "1.00 KiB", "10.00 GiB".
std::string human_bytes(uint64_t b);
// A rate in bytes per second: "120.00 MiB/s".
std::string human_rate(double bytes_per_s);
// A duration in whole seconds (at least 1 when not zero): "0s", "3s",
// "2m05s", "1h02m".
std::string human_duration(double seconds);
// Milliseconds that something took: "350 ms", "1.2 s", "2m05s".
std::string human_ms(int64_t ms);

// Rows of strings printed under a header with columns as wide as their
// widest cell, two spaces apart. `align` has one letter per column, 'l' or
// 'r' (default: all left).
class table {
  public:
    explicit table(std::vector<std::string> header, std::string align = {});
    void add(std::vector<std::string> row);
    size_t size() const { return rows_.size(); }
    void print(std::FILE* out = stdout) const;

  private:
    std::vector<std::string> header_;
    std::string align_;
    std::vector<std::vector<std::string>> rows_;
};

// One status line (long work: a rebuild, a key rotation), redrawn in place
// on a terminal, else printed as a line each time. quiet: nothing shown.
class progress_line {
  public:
    explicit progress_line(bool quiet);
    ~progress_line() { end(); }
    bool tty() const { return tty_; }
    void show(const std::string& s);
    // Ends a line drawn in place (before other output).
    void end();

  private:
    bool quiet_, tty_, open_ = false;
};

}  // namespace weft::cli
