#include "engine/api_audit.h"

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <spdlog/spdlog.h>

#include <string_view>

#include "auth/api_tokens.h"

namespace weft::engine {

namespace {

// Fields never shown: keys, secrets, tokens, whatever their type.
bool secret_field(std::string_view name) {
    for (std::string_view s : {"key", "secret", "psk", "token", "password"})
        if (name.find(s) != std::string_view::npos) return true;
    return false;
}

bool reads_only(std::string_view rpc) {
    return rpc.starts_with("List") || rpc.starts_with("Get") || rpc.starts_with("Read");
}

}  // namespace

std::string audit_fields(const google::protobuf::Message& m) {
    using FD = google::protobuf::FieldDescriptor;
    auto* r = m.GetReflection();
    std::vector<const FD*> fields;
    r->ListFields(m, &fields);
    std::string out;
    for (auto* f : fields) {
        if (!out.empty()) out += ' ';
        out += f->name();
        out += '=';
        if (secret_field(f->name())) {
            out += "***";
            continue;
        }
        if (f->is_repeated()) {
            out += fmt::format("[{}]", r->FieldSize(m, f));
            continue;
        }
        switch (f->cpp_type()) {
            case FD::CPPTYPE_STRING: {
                std::string v = r->GetString(m, f);
                if (f->type() == FD::TYPE_BYTES) v = fmt::format("({} bytes)", v.size());
                if (v.size() > 128) v = v.substr(0, 128) + "...";
                out += auth::log_escape(v);  // the client's bytes: no forged lines
                break;
            }
            case FD::CPPTYPE_INT32:
                out += std::to_string(r->GetInt32(m, f));
                break;
            case FD::CPPTYPE_INT64:
                out += std::to_string(r->GetInt64(m, f));
                break;
            case FD::CPPTYPE_UINT32:
                out += std::to_string(r->GetUInt32(m, f));
                break;
            case FD::CPPTYPE_UINT64:
                out += std::to_string(r->GetUInt64(m, f));
                break;
            case FD::CPPTYPE_BOOL:
                out += r->GetBool(m, f) ? "true" : "false";
                break;
            case FD::CPPTYPE_ENUM:
                out += r->GetEnum(m, f)->name();
                break;
            case FD::CPPTYPE_DOUBLE:
                out += fmt::format("{}", r->GetDouble(m, f));
                break;
            case FD::CPPTYPE_FLOAT:
                out += fmt::format("{}", r->GetFloat(m, f));
                break;
            case FD::CPPTYPE_MESSAGE:
                out += "{" + audit_fields(r->GetMessage(m, f)) + "}";
                break;
        }
    }
    return out;
}

void audit(const std::string& who, const char* rpc, const google::protobuf::Message& req,
           const grpc::Status& st) {
    bool refused = st.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                   st.error_code() == grpc::StatusCode::PERMISSION_DENIED;
    if (reads_only(rpc) && !refused) return;
    std::string fields = audit_fields(req);
    spdlog::info("audit: {} {}{}{} -> {}", auth::log_escape(who), rpc, fields.empty() ? "" : " ",
                 fields,
                 st.ok() ? std::string("ok")
                         : fmt::format("failed: {}", auth::log_escape(st.error_message())));
}

}  // namespace weft::engine
