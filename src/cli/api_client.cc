#include "cli/api_client.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <iterator>

#include "cli/connection.h"
#include "control/grpc_code_name.h"

namespace weft::cli {

void add_api_options(CLI::App* app, api_options& o) {
    app->add_option("--api", o.address, "the engine's management API (weft-engine --api-listen)")
        ->envname("WEFT_API")
        ->type_name("HOST:PORT")
        ->capture_default_str();
    app->add_option("--timeout", o.timeout_s, "how long to wait for the engine's answer, seconds")
        ->type_name("SECONDS")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    auto& a = o.access;
    app->add_option("--api-tls-ca", a.tls_ca,
                    "PEM CA certificate that signed the engine's API certificate: talk TLS")
        ->envname("WEFT_API_TLS_CA")
        ->type_name("FILE");
    app->add_option("--api-tls-cert", a.tls_cert,
                    "PEM client certificate, for an engine that requires one (--api-tls-client-ca)")
        ->envname("WEFT_API_TLS_CERT")
        ->type_name("FILE");
    app->add_option("--api-tls-key", a.tls_key, "PEM private key of --api-tls-cert (mode 0600)")
        ->envname("WEFT_API_TLS_KEY")
        ->type_name("FILE");
    app->add_option("--api-tls-name", a.tls_name,
                    "the name the engine's certificate carries, when --api's address is not it")
        ->envname("WEFT_API_TLS_NAME")
        ->type_name("NAME");
    app->add_option("--api-token-file", a.token_file,
                    "file holding a token the engine knows (its --api-token-file; mode 0600)")
        ->envname("WEFT_API_TOKEN_FILE")
        ->type_name("FILE");
}

using control::grpc_code_name;

api_client::api_client(const api_options& o) : o_(o) {
    auto access = auth::api_client_access::load(o_.access, &access_error_);
    if (!access) return;
    access_ = access.value();
    grpc::ChannelArguments args;
    // The engine is on this node or its management network: never through
    // an HTTP proxy from the environment.
    args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
    access_->add_to(args);
    channel_ = grpc::CreateCustomChannel(o_.address, access_->credentials(), args);
    stub_ = pb::Engine::NewStub(channel_);
}

void api_client::report_access() const {
    fail(access_error_);
}

std::chrono::system_clock::time_point api_client::deadline() const {
    return std::chrono::system_clock::now() +
           std::chrono::duration_cast<std::chrono::system_clock::duration>(
               std::chrono::duration<double>(o_.timeout_s));
}

std::string api_client::sentence(const grpc::Status& s) const {
    if (!channel_) return access_error_;
    switch (s.error_code()) {
        case grpc::StatusCode::UNAVAILABLE:
            // The engine says UNAVAILABLE itself while it stops; the channel
            // is then connected. Otherwise nothing answered at the address.
            if (channel_->GetState(false) != GRPC_CHANNEL_READY) {
                if (access_ && access_->tls())
                    return fmt::format(
                        "no engine answers at {} over TLS: {} (is weft-engine running with "
                        "--api-tls-cert, did --api-tls-ca sign its certificate, for this name "
                        "or --api-tls-name? an engine that requires client certificates needs "
                        "--api-tls-cert and --api-tls-key)",
                        o_.address, s.error_message());
                return fmt::format(
                    "no engine answers at {} (is weft-engine running? --api ADDR; an engine "
                    "serving its API over TLS needs --api-tls-ca)",
                    o_.address);
            }
            break;
        case grpc::StatusCode::UNAUTHENTICATED:
            return fmt::format("the engine at {} refused the call: {}", o_.address,
                               s.error_message());
        case grpc::StatusCode::DEADLINE_EXCEEDED:
            return fmt::format("the engine at {} did not answer within {} s (--timeout)",
                               o_.address, o_.timeout_s);
        case grpc::StatusCode::UNIMPLEMENTED:
            return fmt::format(
                "the server at {} does not implement this request (not a weft-engine, or an "
                "older one?)",
                o_.address);
        default:
            break;
    }
    if (!s.error_message().empty()) return s.error_message();
    return fmt::format("the engine at {} failed the request (gRPC status {})", o_.address,
                       grpc_code_name(s.error_code()));
}

void api_client::report(const grpc::Status& s) const {
    fail(sentence(s));
    // -v: the status itself, for scripts and bug reports.
    if (spdlog::should_log(spdlog::level::info))
        fail(fmt::format("(gRPC status {} from {}{}{})", grpc_code_name(s.error_code()), o_.address,
                         s.error_message().empty() ? "" : ": ", s.error_message()));
}

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Field `f` of `m`; element `i` of a repeated field, or the value when i < 0.
ordered_json field_json(const Message& m, const Reflection& r, const FieldDescriptor* f, int i) {
    bool rep = i >= 0;
    switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
            return rep ? r.GetRepeatedInt32(m, f, i) : r.GetInt32(m, f);
        case FieldDescriptor::CPPTYPE_INT64:
            return rep ? r.GetRepeatedInt64(m, f, i) : r.GetInt64(m, f);
        case FieldDescriptor::CPPTYPE_UINT32:
            return rep ? r.GetRepeatedUInt32(m, f, i) : r.GetUInt32(m, f);
        case FieldDescriptor::CPPTYPE_UINT64:
            return rep ? r.GetRepeatedUInt64(m, f, i) : r.GetUInt64(m, f);
        case FieldDescriptor::CPPTYPE_DOUBLE:
            return rep ? r.GetRepeatedDouble(m, f, i) : r.GetDouble(m, f);
        case FieldDescriptor::CPPTYPE_FLOAT:
            return rep ? r.GetRepeatedFloat(m, f, i) : r.GetFloat(m, f);
        case FieldDescriptor::CPPTYPE_BOOL:
            return rep ? r.GetRepeatedBool(m, f, i) : r.GetBool(m, f);
        case FieldDescriptor::CPPTYPE_ENUM:
            return (rep ? r.GetRepeatedEnum(m, f, i) : r.GetEnum(m, f))->name();
        case FieldDescriptor::CPPTYPE_STRING:
            return rep ? r.GetRepeatedString(m, f, i) : r.GetString(m, f);
        case FieldDescriptor::CPPTYPE_MESSAGE:
            return message_json(rep ? r.GetRepeatedMessage(m, f, i) : r.GetMessage(m, f));
    }
    return nullptr;
}

}  // namespace

ordered_json message_json(const Message& m) {
    ordered_json j = ordered_json::object();
    const auto* d = m.GetDescriptor();
    const auto* r = m.GetReflection();
    for (int k = 0; k < d->field_count(); ++k) {
        const FieldDescriptor* f = d->field(k);
        if (f->is_repeated()) {
            ordered_json a = ordered_json::array();
            for (int i = 0, n = r->FieldSize(m, f); i < n; ++i)
                a.push_back(field_json(m, *r, f, i));
            j[f->name()] = std::move(a);
        } else {
            j[f->name()] = field_json(m, *r, f, -1);
        }
    }
    return j;
}

void print_json(const ordered_json& j) {
    std::printf("%s\n", j.dump(2).c_str());
}

pb::VolumeRef volume_ref(const std::string& pool, const std::string& name) {
    pb::VolumeRef r;
    r.set_pool(pool);
    r.set_name(name);
    return r;
}

std::string volume_kind(const pb::Volume& v) {
    if (v.snapshot()) return "snapshot";
    if (!v.parent_uuid().empty()) return "clone";
    return v.thin() ? "thin" : "thick";
}

namespace {
// "IP:PORT" or "[IPv6]:PORT" -> host (without brackets), port.
std::pair<std::string, std::string> split_address(const std::string& a) {
    auto colon = a.rfind(':');
    if (colon == std::string::npos) return {a, "4420"};
    std::string host = a.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    return {host, a.substr(colon + 1)};
}
}  // namespace

void print_share(const pb::Share& sh, const std::string& what) {
    std::string who = sh.allow_any_host()
                          ? "any host may connect"
                          : fmt::format("hosts allowed: {}", fmt::join(sh.allowed_hosts(), ", "));
    std::printf("%s shared as %s, namespace %u; %s\n", what.c_str(), sh.nqn().c_str(), sh.nsid(),
                who.c_str());
    if (sh.listeners().empty()) {
        std::printf("no NVMe/TCP listener yet: add one with weft engine listener add IP:PORT\n");
        return;
    }
    std::printf("connect with:\n");
    for (auto& l : sh.listeners()) {
        auto [host, port] = split_address(l);
        std::printf("  nvme connect -t tcp -a %s -s %s -n %s\n", host.c_str(), port.c_str(),
                    sh.nqn().c_str());
    }
}

}  // namespace weft::cli
