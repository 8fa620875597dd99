// A bdev that passes everything to another and counts it (io_stats): what the
// engine's metrics and GetStats report per served volume and per reactor.
// Two clock reads per I/O; nothing shared between reactors on the hot path.
#pragma once

#include <memory>

#include "bdev/bdev.h"
#include "bdev/stats/io_stats.h"

namespace weft::bdev {

// The wrapper has the inner bdev's name and properties and follows its size
// (a resize of the inner bdev, e.g. a pool volume's, reaches the wrapper's
// listeners).
std::shared_ptr<bdev> make_stats_bdev(std::shared_ptr<bdev> inner, std::shared_ptr<io_stats> stats);

}  // namespace weft::bdev
