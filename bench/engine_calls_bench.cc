// weft-engine-calls-bench: the baseline of bench/control_scale.sh. What the
// engines themselves take to make and destroy a volume's replicas: for each
// of --count volumes, one CreateVolume on every engine at the same time (as
// weft-control does), then the same for DestroyVolume; over one gRPC channel
// per engine held by this one process, so no process start-up is counted.
//
//   weft-engine-calls-bench --api HOST:PORT --pool NAME [--api ... --pool ...] --count N
//
// Prints "create_ms X" and "delete_ms Y" (per volume, mean).
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "control/engine_client.h"

namespace pb = weft::engine::v1;
using weft::control::engine_client;

int main(int argc, char** argv) {
    CLI::App app{"weft-engine-calls-bench: replica creates and destroys asked of the engines"};
    std::vector<std::string> apis, pools;
    unsigned count = 50;
    uint64_t size = 5 << 20;
    app.add_option("--api", apis, "an engine's management API (one per replica)")->required();
    app.add_option("--pool", pools, "the pool on that engine")->required();
    app.add_option("--count", count, "volumes")->capture_default_str();
    app.add_option("--size", size, "bytes per replica")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    if (apis.size() != pools.size()) {
        fmt::print(stderr, "give one --pool per --api\n");
        return 2;
    }
    engine_client engines(std::chrono::seconds(30), nullptr);
    auto each = [&](auto&& call) {
        std::vector<std::future<grpc::Status>> f;
        for (size_t i = 0; i < apis.size(); ++i)
            f.push_back(std::async(std::launch::async, [&, i] { return call(i); }));
        bool ok = true;
        for (auto& x : f) {
            auto s = x.get();
            if (!s.ok()) {
                fmt::print(stderr, "{}\n", s.error_message());
                ok = false;
            }
        }
        return ok;
    };
    // Channels up before the clock starts.
    each([&](size_t i) {
        pb::ListPoolsReply r;
        return engines.call(apis[i],
                            [&](auto& stub, auto* ctx) { return stub.ListPools(ctx, {}, &r); });
    });
    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    for (unsigned v = 0; v < count; ++v) {
        bool ok = each([&](size_t i) {
            pb::CreateVolumeRequest req;
            req.set_pool(pools[i]);
            req.set_name(fmt::format("calls-bench-{}", v));
            req.set_size_bytes(size);
            pb::Volume out;
            return engines.call(
                apis[i], [&](auto& stub, auto* ctx) { return stub.CreateVolume(ctx, req, &out); });
        });
        if (!ok) return 1;
    }
    auto t1 = clock::now();
    for (unsigned v = 0; v < count; ++v) {
        bool ok = each([&](size_t i) {
            pb::DestroyVolumeRequest req;
            req.mutable_volume()->set_pool(pools[i]);
            req.mutable_volume()->set_name(fmt::format("calls-bench-{}", v));
            pb::Empty out;
            return engines.call(
                apis[i], [&](auto& stub, auto* ctx) { return stub.DestroyVolume(ctx, req, &out); });
        });
        if (!ok) return 1;
    }
    auto t2 = clock::now();
    auto ms = [&](auto a, auto b) {
        return std::chrono::duration<double, std::milli>(b - a).count() / count;
    };
    fmt::print("create_ms {:.3f}\ndelete_ms {:.3f}\n", ms(t0, t1), ms(t1, t2));
    return 0;
}
