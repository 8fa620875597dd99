// Fuzzes the command handlers: admin commands of an enabled controller and
// NVM commands of an I/O queue, over two malloc namespaces, with whatever
// SQE and data the input holds. The transport's checks are bypassed on
// purpose: a handler must stand on its own against any SQE.
//
// Input: byte 0 picks the queue (even: admin, odd: I/O), bytes 1..64 are the
// SQE, the rest is the command's host-to-controller data.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "bdev/bdev.h"
#include "nvmf/controller.h"
#include "nvmf/io_queue.h"
#include "nvmf/target.h"
#include "runtime/reactor.h"

namespace {

using namespace weft;

struct world {
    reactor r{nullptr, reactor::config{}};
    nvmf::target tgt;
    std::shared_ptr<nvmf::subsystem> ss;
    std::shared_ptr<nvmf::controller> ctrl;
    std::unique_ptr<nvmf::io_queue> io;

    world() {
        ss = tgt.add_subsystem("nqn.2026-11.io.weft:fuzz", "FUZZ1", "fuzz").value();
        for (uint32_t nsid = 1; nsid <= 2; ++nsid)
            (void)ss->add_namespace(
                nsid, std::shared_ptr<bdev::bdev>(bdev::make_malloc_bdev("m", 2048, 512)), {});
        reset_controller();
    }

    void reset_controller() {
        if (ctrl) ctrl->shutdown("fuzz reset");
        io.reset();
        ctrl = std::make_shared<nvmf::controller>(tgt, ss, "nqn.2014-08.org.nvmexpress:uuid:fuzz",
                                                  nvmf::host_id{}, 0, tgt.limits(), 0);
        ctrl->set_cntlid(ss->register_controller(ctrl));
        // CC.EN with the only queue entry sizes fabrics allow.
        nvmf::request en;
        auto& pc = reinterpret_cast<nvme::property_command&>(en.cmd);
        pc.opcode = 0x7f;
        pc.fctype = 0x00;
        pc.offset = nvme::reg::cc;
        pc.value = 0x00460001;
        run(ctrl->execute_admin(en));
        io = std::make_unique<nvmf::io_queue>(ctrl);
    }

    void run(task<void> t) {
        bool done = false;
        r.spawn([](task<void> t, bool* done) -> task<void> {
            co_await std::move(t);
            *done = true;
        }(std::move(t), &done));
        r.run_until_idle();
        // Only an Asynchronous Event Request may still wait: a fresh
        // controller cancels it (shutdown resumes it with an abort status).
        if (!done) {
            reset_controller();
            r.run_until_idle();
        }
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static world w;
    if (size < 65) return 0;
    bool admin = (data[0] & 1) == 0;
    nvmf::request req;
    std::memcpy(&req.cmd, data + 1, sizeof req.cmd);
    size_t in = size - 65;
    // The transport sizes the buffer by the SGL length; bound it as it does.
    uint32_t len = req.cmd.sgl.length;
    if (len > 256 * 1024) len = 256 * 1024;
    if (in > len) len = uint32_t(in);
    if (len) {
        req.data = buffer_pool::local().get(len);
        std::memset(req.data.data(), 0, len);
        std::memcpy(req.data.data(), data + 65, in);
        req.data_len = len;
    }
    if (admin)
        w.run(w.ctrl->execute_admin(req));
    else
        w.run(w.io->execute(req));
    return 0;
}
