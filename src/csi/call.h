// `weft-csi call`: one CSI call from the command line, for operators and
// tests (what csc does for other drivers): the request in protobuf's JSON
// mapping of the CSI message, the answer printed the same way.
//
// Contract: call_csi() sends `method` (its CSI name, e.g. NodeStageVolume)
// to the plugin at `endpoint` (unix:///PATH), waits at most `timeout_s`,
// prints the answer as JSON on stdout and returns 0; a refused call prints
// "METHOD: CODE: message" on stderr and returns 1; a method it does not know
// or a request that is not the method's message, 2.
#pragma once

#include <string>

namespace weft::csi {

int call_csi(const std::string& endpoint, const std::string& method,
             const std::string& request_json, double timeout_s);

}  // namespace weft::csi
