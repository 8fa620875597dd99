// Parsing of the engine's core list: "0,1", "0-3,6", or a hex mask "0x5".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/result.h"

namespace weft {

// Returns the CPUs in the order given, without duplicates, or an error with a
// message in `why`.
result<std::vector<int>> parse_cpu_list(std::string_view spec, std::string* why = nullptr);

// The CPUs this process may run on (sched_getaffinity).
std::vector<int> allowed_cpus();

}  // namespace weft
