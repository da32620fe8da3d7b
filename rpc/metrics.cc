#include "rpc/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "storage/status.h"

namespace kv::rpc {
namespace {

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", v);
  }
  return buf;
}

void RenderLabels(const MetricFamily::Labels& labels, std::string* out) {
  if (labels.empty()) return;
  *out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) *out += ',';
    first = false;
    *out += k;
    *out += "=\"";
    *out += EscapeLabelValue(v);
    *out += '"';
  }
  *out += '}';
}

bool ValidName(const std::string& n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  KV_CHECK(bounds_.size() <= kMaxBuckets);
  KV_CHECK(std::is_sorted(bounds_.begin(), bounds_.end()));
}

void Histogram::Observe(double value) {
  const std::size_t i =
      static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                               bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  const double micro = std::max(0.0, value) * 1e6;
  sum_micro_.fetch_add(static_cast<std::uint64_t>(std::llround(micro)), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot s;
  s.bounds = bounds_;
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running + counts_[bounds_.size()].load(std::memory_order_relaxed);
  s.sum = static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6;
  return s;
}

std::vector<double> Histogram::LatencyBounds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,    5,     10};
}

MetricFamily::MetricFamily(std::string name, std::string help, Type type)
    : name_(std::move(name)), help_(std::move(help)), type_(type) {
  KV_CHECK(ValidName(name_));
}

MetricFamily& MetricFamily::Add(double value, Labels labels) {
  KV_CHECK(type_ != Type::kHistogram);
  samples_ += name_;
  RenderLabels(labels, &samples_);
  samples_ += ' ';
  samples_ += Number(value);
  samples_ += '\n';
  return *this;
}

MetricFamily& MetricFamily::Add(const Histogram::Snapshot& h, Labels labels) {
  KV_CHECK(type_ == Type::kHistogram);
  auto line = [&](const char* suffix, const std::string* le, double value) {
    samples_ += name_;
    samples_ += suffix;
    Labels l = labels;
    if (le != nullptr) l.emplace_back("le", *le);
    RenderLabels(l, &samples_);
    samples_ += ' ';
    samples_ += Number(value);
    samples_ += '\n';
  };
  for (std::size_t i = 0; i < h.bounds.size(); ++i) {
    const std::string le = Number(h.bounds[i]);
    line("_bucket", &le, static_cast<double>(h.cumulative[i]));
  }
  const std::string inf = "+Inf";
  line("_bucket", &inf, static_cast<double>(h.count));
  line("_sum", nullptr, h.sum);
  line("_count", nullptr, static_cast<double>(h.count));
  return *this;
}

void MetricFamily::Render(std::string* out) const {
  *out += "# HELP " + name_ + " ";
  for (const char c : help_) {
    if (c == '\\') {
      *out += "\\\\";
    } else if (c == '\n') {
      *out += "\\n";
    } else {
      *out += c;
    }
  }
  *out += "\n# TYPE " + name_ + " ";
  *out += type_ == Type::kCounter ? "counter" : type_ == Type::kGauge ? "gauge" : "histogram";
  *out += '\n';
  *out += samples_;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void RecordClientRequest(RequestMetrics* m, ClientOp op,
                         std::chrono::steady_clock::time_point start, const Status& outcome) {
  if (m == nullptr) return;
  const double secs = SecondsSince(start);
  switch (op) {
    case ClientOp::kGet:
      m->coordinator_get.Observe(secs);
      break;
    case ClientOp::kPut:
      m->coordinator_put.Observe(secs);
      break;
    case ClientOp::kDelete:
      m->coordinator_delete.Observe(secs);
      break;
  }
  int o = 6;
  switch (outcome.code()) {
    case Status::Code::kOk:
      o = 0;
      break;
    case Status::Code::kNotFound:
      o = 1;
      break;
    case Status::Code::kUnavailable:
      o = 2;
      break;
    case Status::Code::kTimeout:
      o = 3;
      break;
    case Status::Code::kOverloaded:
      o = 4;
      break;
    case Status::Code::kInvalidArgument:
      o = 5;
      break;
    default:
      o = 6;
  }
  m->outcomes[static_cast<int>(op)][o].fetch_add(1, std::memory_order_relaxed);
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace kv::rpc
