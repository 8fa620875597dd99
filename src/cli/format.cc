#include "cli/format.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace weft::cli {

result<uint64_t> parse_size(const std::string& s) {
    // Digits, an optional fraction, a unit: mantissa / 10^decimals * unit,
    // in 128-bit integers so that "1.5GiB" is exact.
    size_t i = 0;
    unsigned __int128 mantissa = 0, scale = 1;
    size_t digits = 0;
    bool fraction = false;
    for (; i < s.size(); ++i) {
        char ch = s[i];
        if (ch == '.' && !fraction) {
            fraction = true;
            continue;
        }
        if (!std::isdigit(static_cast<unsigned char>(ch))) break;
        if (mantissa > (unsigned __int128)UINT64_MAX * 10) return error{ERANGE};
        mantissa = mantissa * 10 + unsigned(ch - '0');
        if (fraction) {
            if (scale > (unsigned __int128)UINT64_MAX) return error{ERANGE};
            scale *= 10;
        }
        ++digits;
    }
    if (digits == 0) return error{EINVAL};
    std::string unit = s.substr(i);
    for (auto& ch : unit) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (unit.size() == 3 && unit.ends_with("ib")) unit.resize(1);  // "GiB" as "g"
    const std::string units = "kmgtp";
    unsigned __int128 mult = 1;
    if (!unit.empty() && unit != "b") {
        auto u = units.find(unit);
        if (unit.size() != 1 || u == std::string::npos) return error{EINVAL};
        mult = (unsigned __int128)1 << (10 * (u + 1));
    }
    unsigned __int128 bytes = mantissa * mult;
    if (bytes % scale != 0) return error{EINVAL};  // a fraction of a byte
    bytes /= scale;
    if (bytes > UINT64_MAX) return error{ERANGE};
    return uint64_t(bytes);
}

bool parse_size_arg(const std::string& name, const std::string& s, uint64_t* out) {
    auto r = parse_size(s);
    if (r) {
        *out = r.value();
        return true;
    }
    std::fprintf(stderr, "weft: %s \"%s\" is not a size (%s)\n", name.c_str(), s.c_str(),
                 r.err().code == ERANGE ? "too large" : size_examples);
    return false;
}

std::string human_bytes(uint64_t b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = double(b);
    int u = 0;
    while (v >= 1024 && u < 6) v /= 1024, ++u;
    return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.2f} {}", v, units[u]);
}

std::string human_rate(double bytes_per_s) {
    if (!(bytes_per_s > 0)) return "0 B/s";
    return human_bytes(uint64_t(bytes_per_s)) + "/s";
}

std::string human_duration(double seconds) {
    if (!(seconds > 0)) return "0s";
    uint64_t s = std::max<uint64_t>(1, uint64_t(std::llround(std::min(seconds, 1e12))));
    if (s < 60) return fmt::format("{}s", s);
    if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
    return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
}

std::string human_ms(int64_t ms) {
    if (ms < 0) ms = 0;
    if (ms < 1000) return fmt::format("{} ms", ms);
    if (ms < 60000) return fmt::format("{:.1f} s", double(ms) / 1000);
    return human_duration(double(ms) / 1000);
}

table::table(std::vector<std::string> header, std::string align)
    : header_(std::move(header)), align_(std::move(align)) {
    align_.resize(header_.size(), 'l');
}

void table::add(std::vector<std::string> row) {
    row.resize(header_.size());
    rows_.push_back(std::move(row));
}

void table::print(std::FILE* out) const {
    std::vector<size_t> width(header_.size());
    for (size_t c = 0; c < header_.size(); ++c) {
        width[c] = header_[c].size();
        for (auto& r : rows_) width[c] = std::max(width[c], r[c].size());
    }
    auto line = [&](const std::vector<std::string>& cells) {
        std::string s;
        for (size_t c = 0; c < cells.size(); ++c) {
            if (c) s += "  ";
            bool last = c + 1 == cells.size();
            if (align_[c] == 'r')
                s += fmt::format("{:>{}}", cells[c], width[c]);
            else
                s += last ? cells[c] : fmt::format("{:<{}}", cells[c], width[c]);
        }
        while (!s.empty() && s.back() == ' ') s.pop_back();  // empty last cells
        std::fprintf(out, "%s\n", s.c_str());
    };
    line(header_);
    for (auto& r : rows_) line(r);
}

progress_line::progress_line(bool quiet) : quiet_(quiet), tty_(!quiet && ::isatty(STDOUT_FILENO)) {}

void progress_line::show(const std::string& s) {
    if (quiet_) return;
    if (tty_) {
        std::printf("\r%s\x1b[K", s.c_str());
        open_ = true;
    } else {
        std::printf("%s\n", s.c_str());
    }
    std::fflush(stdout);
}

void progress_line::end() {
    if (open_) std::printf("\n");
    open_ = false;
    std::fflush(stdout);
}

}  // namespace weft::cli
