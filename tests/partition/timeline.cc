#include "tests/partition/timeline.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace kv::partition {
namespace {

constexpr double kLeft = 70, kTop = 30, kLane = 14, kWidth = 1400;

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

const char* Shade(const std::string& nemesis) {
  static const std::map<std::string, const char*> shades = {
      {"halves", "#cfe2f3"}, {"isolate", "#d9ead3"}, {"bridge", "#fff2cc"},
      {"random", "#ead1dc"}, {"loss", "#d0e0e3"},    {"kill", "#f4cccc"},
      {"pause", "#e6e6e6"}};
  auto it = shades.find(nemesis);
  return it == shades.end() ? "#eeeeee" : it->second;
}

}  // namespace

std::string TimelineSvg(const std::vector<Op>& history, const std::vector<Period>& periods,
                        int clients, const TimelineMarks& marks) {
  const double end = std::max(marks.end_s, 1.0);
  const double plot = kWidth - kLeft - 10;
  const double height = kTop + clients * kLane + 60;
  auto x = [&](double t) { return kLeft + plot * std::clamp(t, 0.0, end) / end; };
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + Num(kWidth) +
                  "\" height=\"" + Num(height) + "\" font-family=\"sans-serif\" font-size=\"10\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (const Period& p : periods) {
    s += "<rect x=\"" + Num(x(p.start_s)) + "\" y=\"" + Num(kTop - 12) + "\" width=\"" +
         Num(std::max(1.0, x(p.end_s) - x(p.start_s))) + "\" height=\"" +
         Num(clients * kLane + 12) + "\" fill=\"" + Shade(p.nemesis) + "\"><title>" +
         p.nemesis + " " + p.detail + "</title></rect>\n";
    s += "<text x=\"" + Num(x(p.start_s) + 2) + "\" y=\"" + Num(kTop - 3) + "\">" + p.nemesis +
         " " + p.detail + "</text>\n";
  }
  for (int c = 0; c < clients; ++c) {
    s += "<text x=\"4\" y=\"" + Num(kTop + c * kLane + 10) + "\">client " + std::to_string(c) +
         "</text>\n";
  }
  for (const Op& op : history) {
    const char* color = op.outcome == Outcome::kOk     ? "#2ca02c"
                        : op.outcome == Outcome::kFail ? "#d62728"
                                                       : "#ff7f0e";
    const double x0 = x(op.invoke_s);
    const double w = std::max(1.0, x(op.complete_s) - x0);
    s += "<rect x=\"" + Num(x0) + "\" y=\"" + Num(kTop + op.client * kLane + 2) + "\" width=\"" +
         Num(w) + "\" height=\"" + Num(kLane - 4) + "\" fill=\"" + color + "\"/>\n";
  }
  auto vline = [&](double t, const char* color, const std::string& label) {
    s += "<line x1=\"" + Num(x(t)) + "\" x2=\"" + Num(x(t)) + "\" y1=\"" + Num(kTop - 14) +
         "\" y2=\"" + Num(kTop + clients * kLane) + "\" stroke=\"" + color +
         "\" stroke-width=\"2\"/>\n<text x=\"" + Num(x(t) + 3) + "\" y=\"" +
         Num(kTop + clients * kLane + 14) + "\" fill=\"" + color + "\">" + label + "</text>\n";
  };
  if (marks.heal_s >= 0) vline(marks.heal_s, "#1f4e79", "final heal");
  if (marks.converged_s >= 0) vline(marks.converged_s, "#38761d", "converged");
  // Time axis and legend.
  const double axis_y = kTop + clients * kLane + 30;
  for (double t = 0; t <= end; t += end > 60 ? 10 : 5) {
    s += "<text x=\"" + Num(x(t)) + "\" y=\"" + Num(axis_y) + "\">" + Num(t) + "s</text>\n";
  }
  s += "<text x=\"" + Num(kLeft) + "\" y=\"" + Num(axis_y + 18) +
       "\">bars: operations (green ok, red failed, orange unknown); shaded: nemesis "
       "periods</text>\n";
  return s + "</svg>\n";
}

}  // namespace kv::partition
