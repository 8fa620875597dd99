// The CLI's size parser and table printer (src/cli/format.h).
#include "cli/format.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace weft::cli {
namespace {

uint64_t size_of(const char* s) {
    auto r = parse_size(s);
    EXPECT_TRUE(r) << s;
    return r ? r.value() : 0;
}

TEST(cli_format, parse_size_units) {
    EXPECT_EQ(size_of("4096"), 4096u);
    EXPECT_EQ(size_of("0"), 0u);
    EXPECT_EQ(size_of("512B"), 512u);
    EXPECT_EQ(size_of("4k"), 4096u);
    EXPECT_EQ(size_of("4K"), 4096u);
    EXPECT_EQ(size_of("4KiB"), 4096u);
    EXPECT_EQ(size_of("512MiB"), 512ull << 20);
    EXPECT_EQ(size_of("512m"), 512ull << 20);
    EXPECT_EQ(size_of("1G"), 1ull << 30);
    EXPECT_EQ(size_of("10GiB"), 10ull << 30);
    EXPECT_EQ(size_of("10gib"), 10ull << 30);
    EXPECT_EQ(size_of("2T"), 2ull << 40);
    EXPECT_EQ(size_of("1PiB"), 1ull << 50);
    EXPECT_EQ(size_of("1.5GiB"), 3ull << 29);
    EXPECT_EQ(size_of("0.5k"), 512u);
    EXPECT_EQ(size_of("18446744073709551615"), UINT64_MAX);
}

TEST(cli_format, parse_size_refuses) {
    for (const char* s : {"", "k", "GiB", "12x", "1KB", "1 GiB", "-1", "1e3", "1.2.3", "5ib",
                          "0.3k", "1.0000001", "1Gi", "1GiBs"})
        EXPECT_FALSE(parse_size(s)) << '"' << s << '"';
    EXPECT_EQ(parse_size("18446744073709551616").err().code, ERANGE);
    EXPECT_EQ(parse_size("16384PiB").err().code, ERANGE);
    EXPECT_EQ(parse_size("1x").err().code, EINVAL);
}

TEST(cli_format, human_bytes) {
    EXPECT_EQ(human_bytes(0), "0 B");
    EXPECT_EQ(human_bytes(1023), "1023 B");
    EXPECT_EQ(human_bytes(1024), "1.00 KiB");
    EXPECT_EQ(human_bytes(1ull << 30), "1.00 GiB");
    EXPECT_EQ(human_bytes(255ull << 20), "255.00 MiB");
    EXPECT_EQ(human_bytes(3ull << 29), "1.50 GiB");
}

TEST(cli_format, table_aligns_columns) {
    table t({"name", "size", "path"}, "lrl");
    t.add({"p1", "1.00 GiB", "/dev/a"});
    t.add({"longer", "512 B"});  // a short row: empty cells
    char* buf = nullptr;
    size_t len = 0;
    std::FILE* f = open_memstream(&buf, &len);
    t.print(f);
    std::fclose(f);
    std::string out(buf, len);
    std::free(buf);
    EXPECT_EQ(out,
              "name        size  path\n"
              "p1      1.00 GiB  /dev/a\n"
              "longer     512 B\n");
}

}  // namespace
}  // namespace weft::cli
