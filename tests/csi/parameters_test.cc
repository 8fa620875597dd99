#include "csi/parameters.h"

#include <gtest/gtest.h>

namespace weft::csi {
namespace {

TEST(CsiParameters, KnownParametersAreRead) {
    auto r = parse_parameters({{"repl", "2"},
                               {"thin", "false"},
                               {"fsType", "xfs"},
                               {"ioTimeout", "30"},
                               {"protocol", "nvmf"},
                               {"selector", "zone=a,disk=ssd"},
                               {"attach", "user"},
                               {"csi.storage.k8s.io/pvc/name", "data"}});
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.p.replicas, 2u);
    EXPECT_FALSE(r.p.thin);
    EXPECT_EQ(r.p.fs_type, "xfs");
    EXPECT_EQ(r.p.io_timeout_s, 30u);
    EXPECT_EQ(r.p.selector, (std::map<std::string, std::string>{{"zone", "a"}, {"disk", "ssd"}}));
    EXPECT_EQ(
        volume_context_of(r.p),
        (std::map<std::string, std::string>{
            {"protocol", "nvmf"}, {"fsType", "xfs"}, {"ioTimeout", "30"}, {"attach", "user"}}));
}

TEST(CsiParameters, DefaultsWhenNoneAreGiven) {
    auto r = parse_parameters({});
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.p.replicas, std::nullopt);
    EXPECT_TRUE(r.p.thin);
    EXPECT_EQ(volume_context_of(r.p), (std::map<std::string, std::string>{{"protocol", "nvmf"}}));
}

TEST(CsiParameters, BadValuesAndUnknownKeysAreRefusedByName) {
    struct {
        std::map<std::string, std::string> in;
        const char* named;
    } cases[] = {
        {{{"repl", "0"}}, "repl"},           {{{"repl", "6"}}, "repl"},
        {{{"repl", "two"}}, "repl"},         {{{"repl", "2x"}}, "repl"},
        {{{"thin", "yes"}}, "thin"},         {{{"fsType", "btrfs"}}, "fsType"},
        {{{"ioTimeout", "0"}}, "ioTimeout"}, {{{"protocol", "iscsi"}}, "protocol"},
        {{{"attach", "fuse"}}, "attach"},    {{{"selector", "zone"}}, "selector"},
        {{{"selector", "=a"}}, "selector"},  {{{"replicas", "3"}}, "replicas"},
        {{{"Repl", "3"}}, "Repl"},
    };
    for (auto& c : cases) {
        auto r = parse_parameters(c.in);
        EXPECT_NE(r.error.find(c.named), std::string::npos) << c.named << ": " << r.error;
    }
}

}  // namespace
}  // namespace weft::csi
