#include "initiator/fixture.h"

#include <gtest/gtest.h>

#include "bdev/bdev.h"
#include "nvmf/tcp_server.h"

namespace weft::test {

namespace {
initiator::host_id make_id(uint8_t seed) {
    initiator::host_id id;
    for (size_t i = 0; i < id.size(); ++i) id[i] = uint8_t(seed + i);
    return id;
}
}  // namespace

const host host_a{"nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-0000000000a1",
                  make_id(0xa0)};
const host host_b{"nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-4000-8000-0000000000b1",
                  make_id(0xb0)};
const host host_c{"nqn.2014-08.org.nvmexpress:uuid:cccccccc-0000-4000-8000-0000000000c1",
                  make_id(0xc0)};

initiator::controller_options fixture::options(const host& h) const {
    initiator::controller_options o;
    o.address = addr;
    o.subnqn = nqn;
    o.hostnqn = h.nqn;
    o.hostid = h.id;
    o.io_queues = 1;
    o.kato_ms = 10000;
    return o;
}

void fill(std::span<std::byte> buf, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < buf.size(); ++i) {
        x = x * 1103515245u + 12345u;
        buf[i] = std::byte(x >> 16);
    }
}

void with_target(std::function<task<void>(fixture&)> body, nvmf::tcp_options tcp) {
    run_reactors(2, [&]() -> task<void> {
        auto f = std::make_unique<fixture>();
        f->ss = f->tgt.add_subsystem(nqn, "WEFTINIT0001", "weft initiator test").value();
        f->ss->allow_any_host(false);
        f->ss->allow_host(host_a.nqn);
        f->ss->allow_host(host_b.nqn);
        std::shared_ptr<bdev::bdev> dev = bdev::make_malloc_bdev("ns1", ns1_blocks, 512);
        EXPECT_TRUE(f->ss->add_namespace(1, dev, {}).ok());
        nvmf::tcp_server server(f->tgt, tcp, 2);
        auto r = co_await server.listen(socket_address::ipv4("127.0.0.1", 0), tcp.tls);
        if (!r) {
            ADD_FAILURE() << "listen: " << r.err().message();
            co_return;
        }
        f->addr = server.addresses().front();
        co_await body(*f);
        co_await server.stop();
        (void)f->ss->remove_namespace(1);
    });
}

}  // namespace weft::test
