#include "csi/kernel_nvme.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "csi/names.h"
#include "csi/run_command.h"

namespace weft::csi::kernel_nvme {

namespace fs = std::filesystem;

namespace {

const fs::path class_nvme = "/sys/class/nvme";
const fs::path class_subsystem = "/sys/class/nvme-subsystem";
constexpr const char* fabrics_device = "/dev/nvme-fabrics";

std::string first_line(const fs::path& p) {
    std::ifstream f(p);
    std::string s;
    std::getline(f, s);
    return s;
}

bool write_text(const fs::path& p, const std::string& text, std::string* why = nullptr) {
    int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
    bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == ssize_t(text.size());
    if (!ok && why) *why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return ok;
}

// "traddr=10.0.2.2,trsvcid=4420,src_addr=10.0.2.15": one field of it.
std::string address_field(const std::string& address, const std::string& key) {
    size_t at = 0;
    while (at < address.size()) {
        size_t comma = address.find(',', at);
        if (comma == std::string::npos) comma = address.size();
        std::string kv = address.substr(at, comma - at);
        if (kv.starts_with(key + "=")) return kv.substr(key.size() + 1);
        at = comma + 1;
    }
    return {};
}

// The controllers (nvmeN) of subsystem `nqn`.
std::vector<std::string> controllers(const std::string& nqn) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(class_nvme, ec))
        if (first_line(e.path() / "subsysnqn") == nqn) out.push_back(e.path().filename());
    return out;
}

bool connected_at(const std::string& nqn, const path& p) {
    for (auto& c : controllers(nqn)) {
        std::string a = first_line(class_nvme / c / "address");
        if (address_field(a, "traddr") == p.address && address_field(a, "trsvcid") == p.port)
            return true;
    }
    return false;
}

// The sysfs directories of the namespace block devices under `dir` named
// like `pattern` whose nsid is `nsid`.
std::vector<fs::path> namespaces_in(const fs::path& dir, const std::regex& pattern, uint32_t nsid) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(dir, ec))
        if (std::regex_match(e.path().filename().string(), pattern) &&
            first_line(e.path() / "nsid") == std::to_string(nsid))
            out.push_back(e.path());
    return out;
}

const std::regex disk_name(R"(nvme\d+n\d+)");         // a head, or a lone path
const std::regex path_name(R"(nvme\d+(c\d+)?n\d+)");  // and a multipath path

}  // namespace

bool available() {
    if (!fs::exists("/sys/module/nvme_tcp")) run_command({"modprobe", "nvme-tcp"});
    return fs::exists("/sys/module/nvme_tcp") && fs::exists(fabrics_device);
}

std::string connect(const connect_options& o) {
    std::string host_id = host_id_of(o.host_nqn);
    std::vector<std::string> failed;
    for (auto& p : o.paths) {
        if (connected_at(o.nqn, p)) continue;
        // What libnvme (nvme connect) writes: the kernel's fabrics options.
        std::string opts = fmt::format(
            "transport=tcp,traddr={},trsvcid={},nqn={},hostnqn={},hostid={},ctrl_loss_tmo={},"
            "reconnect_delay={},keep_alive_tmo={}",
            p.address, p.port, o.nqn, o.host_nqn, host_id, o.ctrl_loss_tmo_s, o.reconnect_delay_s,
            o.keep_alive_tmo_s);
        // One open per controller: the kernel answers "instance=N,cntlid=M"
        // on the file it was asked on.
        int e = 0;
        char answer[256] = {};
        int fd = ::open(fabrics_device, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            e = errno;
        } else {
            ssize_t n = ::write(fd, opts.data(), opts.size());
            if (n < 0)
                e = errno;
            else if (n != ssize_t(opts.size()))
                e = EIO;  // a short write: the kernel took part of the options
            else if (::read(fd, answer, sizeof answer - 1) < 0)
                e = errno;
            ::close(fd);
        }
        if (e != 0 && e != EALREADY) {  // EALREADY: connected meanwhile
            failed.push_back(fmt::format("{}:{}: {}", p.address, p.port, std::strerror(e)));
            continue;
        }
        spdlog::info("connected {} at {}:{} ({})", o.nqn, p.address, p.port,
                     std::string(answer).substr(0, std::string(answer).find('\n')));
    }
    bool any = false;
    for (auto& p : o.paths) any = any || connected_at(o.nqn, p);
    if (!any) {
        std::string why;
        for (auto& f : failed) why += (why.empty() ? "" : "; ") + f;
        return fmt::format("no path to {} connects ({}); the kernel's log says more", o.nqn,
                           why.empty() ? "no path given" : why);
    }
    for (auto& f : failed) spdlog::warn("{}: path {} did not connect", o.nqn, f);
    return {};
}

std::string disconnect(const std::string& nqn) {
    for (auto& c : controllers(nqn)) {
        std::string why;
        // What nvme disconnect writes; ENODEV: gone meanwhile.
        if (!write_text(class_nvme / c / "delete_controller", "1", &why) &&
            fs::exists(class_nvme / c))
            return fmt::format("disconnecting {} ({}): {}", c, nqn, why);
    }
    return {};
}

std::string rescan(const std::string& nqn) {
    unsigned n = 0;
    for (auto& c : controllers(nqn)) {
        if (first_line(class_nvme / c / "state") != "live") continue;
        std::string why;
        if (!write_text(class_nvme / c / "rescan_controller", "1", &why))
            return fmt::format("rescanning {} ({}): {}", c, nqn, why);
        ++n;
    }
    return n ? "" : fmt::format("no live path to {} to rescan", nqn);
}

std::string namespace_device(const std::string& nqn, uint32_t nsid) {
    std::error_code ec;
    // Native multipath: the subsystem's head device.
    for (auto& s : fs::directory_iterator(class_subsystem, ec)) {
        if (first_line(s.path() / "subsysnqn") != nqn) continue;
        auto heads = namespaces_in(s.path(), disk_name, nsid);
        if (!heads.empty()) return "/dev/" + heads.front().filename().string();
    }
    // Without it (nvme_core.multipath=N): a controller's own namespace.
    for (auto& c : controllers(nqn)) {
        auto own = namespaces_in(class_nvme / c, disk_name, nsid);
        if (!own.empty()) return "/dev/" + own.front().filename().string();
    }
    return {};
}

std::string wait_namespace(const std::string& nqn, uint32_t nsid, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
        std::string dev = namespace_device(nqn, nsid);
        if (!dev.empty() && fs::exists(dev)) return dev;
        if (std::chrono::steady_clock::now() >= until) return {};
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

unsigned live_paths(const std::string& nqn) {
    unsigned n = 0;
    for (auto& c : controllers(nqn)) n += first_line(class_nvme / c / "state") == "live";
    return n;
}

std::string set_io_timeout(const std::string& nqn, uint32_t nsid, unsigned seconds) {
    unsigned set = 0;
    std::string why;
    for (auto& c : controllers(nqn))
        for (auto& d : namespaces_in(class_nvme / c, path_name, nsid))
            set += write_text(d / "queue" / "io_timeout", std::to_string(seconds * 1000ull), &why);
    return set ? ""
               : fmt::format("no namespace {} of {} took the I/O timeout: {}", nsid, nqn,
                             why.empty() ? "none found" : why);
}

}  // namespace weft::csi::kernel_nvme
