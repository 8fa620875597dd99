#include "runtime/cpu_list.h"

#include <gtest/gtest.h>

namespace weft {
namespace {

TEST(cpu_list, lists_ranges_and_masks) {
    EXPECT_EQ(parse_cpu_list("0,1").value(), (std::vector<int>{0, 1}));
    EXPECT_EQ(parse_cpu_list("2-4,0").value(), (std::vector<int>{2, 3, 4, 0}));
    EXPECT_EQ(parse_cpu_list("0x5").value(), (std::vector<int>{0, 2}));
    EXPECT_EQ(parse_cpu_list("1,1,1").value(), (std::vector<int>{1}));
}

TEST(cpu_list, bad_input_says_why) {
    for (const char* bad : {"", "a", "1-", "3-1", "0x", "0xZZ", "1,,2", "-1", "99999"}) {
        std::string why;
        auto r = parse_cpu_list(bad, &why);
        EXPECT_FALSE(r.ok()) << bad;
        EXPECT_FALSE(why.empty()) << bad;
    }
}

TEST(cpu_list, allowed_cpus_is_not_empty) {
    EXPECT_FALSE(allowed_cpus().empty());
}

}  // namespace
}  // namespace weft
