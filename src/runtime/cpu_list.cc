#include "runtime/cpu_list.h"

#include <sched.h>

#include <algorithm>
#include <charconv>

namespace weft {
namespace {

bool parse_int(std::string_view s, int base, long& out) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
    return ec == std::errc() && p == s.data() + s.size();
}

result<std::vector<int>> fail(std::string* why, std::string msg) {
    if (why) *why = std::move(msg);
    return error{EINVAL};
}

}  // namespace

result<std::vector<int>> parse_cpu_list(std::string_view spec, std::string* why) {
    std::vector<int> cpus;
    auto add = [&](long c) {
        if (std::find(cpus.begin(), cpus.end(), int(c)) == cpus.end()) cpus.push_back(int(c));
    };
    if (spec.starts_with("0x") || spec.starts_with("0X")) {
        std::string_view hex = spec.substr(2);
        if (hex.empty() || hex.size() > 16) return fail(why, "a CPU mask is 1 to 16 hex digits");
        long mask = 0;
        unsigned long long m = 0;
        auto [p, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), m, 16);
        if (ec != std::errc() || p != hex.data() + hex.size())
            return fail(why, "not a hex CPU mask: " + std::string(spec));
        (void)mask;
        for (int bit = 0; bit < 64; ++bit)
            if (m & (1ull << bit)) add(bit);
    } else {
        size_t pos = 0;
        while (pos <= spec.size()) {
            size_t comma = spec.find(',', pos);
            std::string_view item = spec.substr(
                pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
            size_t dash = item.find('-');
            long lo = 0, hi = 0;
            if (dash == std::string_view::npos) {
                if (!parse_int(item, 10, lo))
                    return fail(why, "not a CPU number: '" + std::string(item) + "'");
                hi = lo;
            } else if (!parse_int(item.substr(0, dash), 10, lo) ||
                       !parse_int(item.substr(dash + 1), 10, hi) || hi < lo) {
                return fail(why, "not a CPU range: '" + std::string(item) + "'");
            }
            if (lo < 0 || hi >= CPU_SETSIZE)
                return fail(why, "CPU number out of range: '" + std::string(item) + "'");
            for (long c = lo; c <= hi; ++c) add(c);
            if (comma == std::string_view::npos) break;
            pos = comma + 1;
        }
    }
    if (cpus.empty()) return fail(why, "the core list is empty");
    return cpus;
}

std::vector<int> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> out;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return {0};
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) out.push_back(c);
    return out;
}

}  // namespace weft
