// The Prometheus text exposition (format 0.0.4) of a stats_snapshot.
#pragma once

#include <string>

#include "engine/manager.h"

namespace weft::engine {

std::string render_prometheus(const stats_snapshot& s);

}  // namespace weft::engine
