// The partition suite's timeline picture: pure, no I/O (returns SVG text).
//
// One lane per client; each operation is a bar from its invoke to its completion, green when
// acknowledged, red when failed, orange when its outcome is unknown. Nemesis periods are shaded
// across every lane and labelled; vertical lines mark the final heal and convergence.
//
// Used by tests/partition/driver.cc and its unit tests.
#pragma once

#include <string>
#include <vector>

#include "tests/partition/history.h"

namespace kv::partition {

struct TimelineMarks {
  double end_s = 0;        // right edge of the picture
  double heal_s = -1;      // the final heal; < 0: none
  double converged_s = -1;  // when every replica agreed; < 0: never
};

std::string TimelineSvg(const std::vector<Op>& history, const std::vector<Period>& periods,
                        int clients, const TimelineMarks& marks);

}  // namespace kv::partition
