#include "metrics/status.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/net.h"
#include "metrics/prober_metrics.h"

namespace netprobe {

double percentile_select(std::vector<double>& values, int p) {
  if (values.empty()) return 0;
  // percentile_linear's arithmetic (netprobify's), on the two order statistics it needs: O(n), no sort.
  const double k = static_cast<double>(values.size() - 1) * (static_cast<double>(p) / 100.0);
  const double f = std::floor(k);
  const double c = std::ceil(k);
  const auto low = values.begin() + static_cast<std::ptrdiff_t>(f);
  std::nth_element(values.begin(), low, values.end());
  if (f == c) return *low;
  const double high = *std::min_element(low + 1, values.end());
  return *low * (c - k) + high * (k - f);
}

void StatusHistory::record(const IterationReport& report, std::time_t now) {
  const auto when = static_cast<uint32_t>(std::max<std::time_t>(now, 0));
  // The points are computed before taking the lock: the HTTP threads only wait for the appends.
  std::vector<std::pair<Key, IterationPoint>> points;
  points.reserve(report.groups.size());
  std::vector<double> rtts;
  for (const GroupMeasurement& m : report.groups) {
    if (m.sent == 0) continue;  // nothing measured: neither a pass nor a point
    rtts.clear();
    for (double v : m.rtts_s)
      if (v >= 0 && std::isfinite(v)) rtts.push_back(v);
    IterationPoint point;
    point.time = when;
    point.sent = static_cast<uint32_t>(std::min<uint64_t>(m.sent, UINT32_MAX));
    point.loss_ratio = static_cast<float>(static_cast<double>(m.lost) / static_cast<double>(m.sent));
    if (!rtts.empty()) {
      // Selected, not sorted: the supervisor pays O(n) per group (TargetSeries sorts the same RTTs already).
      point.p50 = static_cast<float>(percentile_select(rtts, 50));
      point.p95 = static_cast<float>(percentile_select(rtts, 95));
    }
    points.emplace_back(
        Key{std::string(metric_prefix(m.type)), m.target, m.group, std::string(to_string(m.af))}, point);
  }
  const std::lock_guard lock(mutex_);
  if (when >= last_sweep_ + 60) {  // forget what stopped reporting, at most once a minute
    last_sweep_ = when;
    std::erase_if(rings_,
                  [&](const auto& entry) { return entry.second.updated + kForgetAfterSeconds < when; });
  }
  for (auto& [key, point] : points) {
    auto it = rings_.find(key);
    if (it == rings_.end()) {
      if (rings_.size() >= kMaxKeys) continue;
      it = rings_.emplace(std::move(key), Ring{}).first;
    }
    Ring& ring = it->second;
    ring.points[ring.next] = point;
    ring.next = static_cast<uint8_t>((ring.next + 1) % kHistoryIterations);
    if (ring.count < kHistoryIterations) ++ring.count;
    ring.updated = when;
  }
}

std::vector<IterationPoint> StatusHistory::points(const Key& key) const {
  const std::lock_guard lock(mutex_);
  const auto it = rings_.find(key);
  if (it == rings_.end()) return {};
  const Ring& ring = it->second;
  std::vector<IterationPoint> out;
  out.reserve(ring.count);
  const size_t first = (ring.next + kHistoryIterations - ring.count) % kHistoryIterations;
  for (size_t i = 0; i < ring.count; ++i) out.push_back(ring.points[(first + i) % kHistoryIterations]);
  return out;
}

size_t StatusHistory::size() const {
  const std::lock_guard lock(mutex_);
  return rings_.size();
}

namespace {

struct Sample {
  std::string_view name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// name{a="b",...} value — the subset of the text format our sources write.
bool parse_sample(std::string_view line, Sample& out) {
  const size_t brace = line.find('{');
  const size_t space = line.rfind(' ');
  if (space == std::string_view::npos) return false;
  out.labels.clear();
  if (brace != std::string_view::npos && brace < space) {
    out.name = line.substr(0, brace);
    size_t at = brace + 1;
    while (at < line.size() && line[at] != '}') {
      const size_t eq = line.find("=\"", at);
      if (eq == std::string_view::npos) return false;
      std::string key(line.substr(at, eq - at)), value;
      size_t i = eq + 2;
      for (; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\' && i + 1 < line.size()) {
          ++i;
          value += line[i] == 'n' ? '\n' : line[i];
        } else {
          value += line[i];
        }
      }
      if (i >= line.size()) return false;
      out.labels.emplace(std::move(key), std::move(value));
      at = i + 1;
      if (at < line.size() && line[at] == ',') ++at;
    }
  } else {
    out.name = line.substr(0, space);
  }
  const std::string v(line.substr(space + 1));
  char* end = nullptr;
  out.value = std::strtod(v.c_str(), &end);
  if (v == "Nan") out.value = std::nan("");
  return end != v.c_str();
}

bool ends_with(std::string_view s, std::string_view suffix, std::string_view* prefix) {
  if (s.size() <= suffix.size() || s.substr(s.size() - suffix.size()) != suffix) return false;
  *prefix = s.substr(0, s.size() - suffix.size());
  return true;
}

std::string label(const Sample& s, const char* name) {
  const auto it = s.labels.find(name);
  return it == s.labels.end() ? std::string() : it->second;
}

std::string escape_html(std::string_view in) {
  std::string out;
  for (char c : in) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string percent(double ratio) {
  return ratio < 0 || std::isnan(ratio) ? "-" : fmt::format("{:.2f} %", 100 * ratio);
}

std::string millis(double seconds) {
  return seconds < 0 || std::isnan(seconds) ? "-" : fmt::format("{:.3f} ms", 1000 * seconds);
}

// Green (no loss) to red (all lost), for the loss cells.
std::string loss_colour(double ratio) {
  if (ratio < 0 || std::isnan(ratio)) return "#eee";
  const double r = std::clamp(ratio * 5, 0.0, 1.0);  // 20 % loss is already fully red
  return fmt::format("rgb({},{},{})", static_cast<int>(200 + 55 * r), static_cast<int>(240 - 170 * r),
                     static_cast<int>(200 - 130 * r));
}

nlohmann::json number_or_null(double v) {
  return v < 0 || std::isnan(v) ? nlohmann::json() : nlohmann::json(v);
}

nlohmann::json history_json(const std::vector<IterationPoint>& history) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : history)
    out.push_back({{"time", p.time},
                   {"sent", p.sent},
                   {"loss_ratio", p.loss_ratio},
                   {"rtt_p50_seconds", number_or_null(p.p50)},
                   {"rtt_p95_seconds", number_or_null(p.p95)}});
  return out;
}

// Loss as the few characters a history or matrix cell has room for: "0", "0.5", "12", "100".
std::string short_percent(double ratio) {
  if (ratio < 0 || std::isnan(ratio)) return "-";
  const double pc = 100 * ratio;
  if (pc == 0) return "0";
  if (pc < 10) return fmt::format("{:.1f}", pc);
  return fmt::format("{:.0f}", pc);
}

std::string clock_time(uint32_t t) {
  const std::time_t when = t;
  std::tm tm{};
  gmtime_r(&when, &tm);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &tm);
  return text;
}

// The last iterations: a cell per iteration (loss in % on its colour, details on hover), then the p50 and
// p95 round trips as an inline SVG sparkline (no script, no external request).
std::string history_html(const std::vector<IterationPoint>& history) {
  if (history.empty()) return "-";
  std::string h = "<span class=\"hist\">";
  for (const auto& p : history)
    h += fmt::format(
        "<i style=\"background:{}\" title=\"{} UTC: loss {} of {} probes, p50 {}, p95 {}\">{}</i>",
        loss_colour(p.loss_ratio), clock_time(p.time), percent(p.loss_ratio), p.sent, millis(p.p50),
        millis(p.p95), short_percent(p.loss_ratio));
  h += "</span>";
  double top = 0;
  for (const auto& p : history) top = std::max(top, static_cast<double>(p.p95));
  if (top <= 0) return h;
  constexpr int kWidth = 80, kHeight = 18, kStep = kWidth / static_cast<int>(kHistoryIterations - 1);
  auto line = [&](float IterationPoint::*field, const char* colour) {
    std::string points;
    for (size_t i = 0; i < history.size(); ++i) {
      const double v = history[i].*field;
      if (v < 0) continue;
      points += fmt::format("{}{},{:.1f}", points.empty() ? "" : " ", static_cast<int>(i) * kStep,
                            kHeight - 1 - (kHeight - 2) * v / top);
    }
    return fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>", colour,
                       points);
  };
  const IterationPoint& last = history.back();
  h += fmt::format(
      " <svg width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\"><title>round trip p50 (blue) and "
      "p95 "
      "(orange) of the last {} iterations, up to {}</title>{}{}</svg> <small>{} / {}</small>",
      kWidth, kHeight, kWidth, kHeight, history.size(), millis(top), line(&IterationPoint::p50, "#36c"),
      line(&IterationPoint::p95, "#e80"), millis(last.p50), millis(last.p95));
  return h;
}

}  // namespace

StatusSnapshot status_from_exposition(std::string_view text, size_t max_rows, const StatusHistory* history) {
  StatusSnapshot out;
  std::map<std::tuple<std::string, std::string, std::string, std::string>, StatusRow> rows;
  // A lossy flow: its row's key and its src, dst and src_port labels.
  std::map<
      std::tuple<std::string, std::string, std::string, std::string, std::string, std::string, std::string>,
      StatusPath>
      paths;
  Sample s;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty() || line.front() == '#' || !parse_sample(line, s)) continue;
    if (out.probe_name.empty()) out.probe_name = label(s, "probe_name");
    if (s.name == "netprobe_info") out.version = label(s, "version");
    if (s.name == "app_worker_restarts_total") out.worker_restarts += s.value;
    if (s.name == "netprobe_send_errors_total") out.send_errors += s.value;
    if (s.name == "netprobe_capture_packets_dropped_total") out.capture_dropped += s.value;
    if (s.name == "app_reload_conf_failed_status") out.reload_failed = s.value;
    if (s.name == "app_iteration_time_seconds") out.iteration_seconds = s.value;
    if (!s.labels.count("destination") || !s.labels.count("group")) continue;
    std::string_view type;
    const auto key = [&] {
      return std::make_tuple(std::string(type), label(s, "destination"), label(s, "group"),
                             label(s, "address_family"));
    };
    auto row = [&]() -> StatusRow& {
      StatusRow& r = rows[key()];
      if (r.type.empty()) {
        r.type = std::string(type);
        r.destination = label(s, "destination");
        r.group = label(s, "group");
        r.address_family = label(s, "address_family");
      }
      return r;
    };
    auto path = [&]() -> StatusPath& {
      StatusPath& p = paths[std::tuple_cat(
          key(), std::make_tuple(label(s, "src"), label(s, "dst"), label(s, "src_port")))];
      if (p.type.empty()) {
        p.type = std::string(type);
        p.destination = label(s, "destination");
        p.group = label(s, "group");
        p.address_family = label(s, "address_family");
        p.src = label(s, "src");
        p.dst = label(s, "dst");
        p.src_port = label(s, "src_port");
      }
      return p;
    };
    // Longest suffixes first: _paths_with_loss before _paths, _loss_total before _loss_ratio.
    if (ends_with(s.name, "_worst_path_loss_ratio", &type)) {
      row().worst_path_loss = s.value;
    } else if (ends_with(s.name, "_paths_with_loss", &type)) {
      row().lossy_paths = s.value;
    } else if (ends_with(s.name, "_path_loss_ratio", &type)) {
      path().loss_ratio = s.value;
    } else if (ends_with(s.name, "_path_sent", &type)) {
      path().sent = s.value;
    } else if (ends_with(s.name, "_paths", &type)) {
      row().paths = s.value;
    } else if (ends_with(s.name, "_sent_total", &type)) {
      row().sent = s.value;
    } else if (ends_with(s.name, "_loss_total", &type) &&
               type.find("icmp_errors") == std::string_view::npos) {
      row().lost = s.value;
    } else if (ends_with(s.name, "_loss_ratio", &type) && type.find("path") == std::string_view::npos) {
      row().last_loss = s.value;
    } else if (ends_with(s.name, "_round_trip_seconds", &type) && s.labels.count("percentile")) {
      row().rtt[label(s, "percentile")] = s.value;
    }
  }
  // The matrix: per group, its destinations' worst last loss, before the rows are cut.
  std::map<std::string, std::map<std::string, double>> mesh;  // group -> destination -> loss
  for (auto& [key, row] : rows) {
    if (row.last_loss >= 1) row.rtt.clear();  // "0 without answer": no round trip to show
    if (history) row.history = history->points(key);
    auto [cell, added] = mesh[row.group].try_emplace(row.destination, row.last_loss);
    if (!added) cell->second = std::max(cell->second, row.last_loss);
    out.rows.push_back(std::move(row));
  }
  size_t cells = 0;
  for (auto& [group, destinations] : mesh) {
    if (destinations.size() < kMeshMinDestinations) continue;
    StatusMesh m;
    m.group = group;
    m.destinations = destinations.size();
    for (const auto& [destination, loss] : destinations) {
      if (cells >= kMaxMeshCells) break;
      m.cells.push_back({destination, loss});
      ++cells;
    }
    out.meshes.push_back(std::move(m));
  }
  for (auto& [key, p] : paths) out.worst_paths.push_back(std::move(p));
  out.paths_total = out.worst_paths.size();
  std::stable_sort(out.worst_paths.begin(), out.worst_paths.end(),
                   [](const StatusPath& a, const StatusPath& b) {
                     return std::make_tuple(a.loss_ratio, a.sent) > std::make_tuple(b.loss_ratio, b.sent);
                   });
  if (out.worst_paths.size() > kMaxStatusPaths) out.worst_paths.resize(kMaxStatusPaths);
  std::stable_sort(out.rows.begin(), out.rows.end(), [](const StatusRow& a, const StatusRow& b) {
    const double al = a.sent > 0 ? a.lost / a.sent : 0, bl = b.sent > 0 ? b.lost / b.sent : 0;
    return std::make_tuple(a.last_loss, al) > std::make_tuple(b.last_loss, bl);
  });
  out.rows_total = out.rows.size();
  if (out.rows.size() > max_rows) out.rows.resize(max_rows);
  return out;
}

std::string status_json(const StatusSnapshot& status) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : status.rows) {
    nlohmann::json rtt = nlohmann::json::object();
    for (const auto& [p, v] : r.rtt) rtt["p" + p] = v;
    rows.push_back(
        {{"type", r.type},
         {"destination", r.destination},
         {"group", r.group},
         {"address_family", r.address_family},
         {"sent", r.sent},
         {"lost", r.lost},
         {"loss_ratio_since_start", r.sent > 0 ? nlohmann::json(r.lost / r.sent) : nlohmann::json()},
         {"loss_ratio_last_iteration", number_or_null(r.last_loss)},
         {"rtt_seconds_last_iteration", rtt},
         {"worst_path_loss_ratio", number_or_null(r.worst_path_loss)},
         {"paths", number_or_null(r.paths)},
         {"paths_with_loss", number_or_null(r.lossy_paths)},
         {"history", history_json(r.history)}});
  }
  nlohmann::json paths = nlohmann::json::array();
  for (const auto& p : status.worst_paths)
    paths.push_back({{"type", p.type},
                     {"destination", p.destination},
                     {"group", p.group},
                     {"address_family", p.address_family},
                     {"src", p.src},
                     {"dst", p.dst},
                     {"src_port", p.src_port},
                     {"loss_ratio", p.loss_ratio},
                     {"sent", number_or_null(p.sent)}});
  nlohmann::json meshes = nlohmann::json::array();
  for (const auto& m : status.meshes) {
    nlohmann::json cells = nlohmann::json::array();
    for (const auto& c : m.cells)
      cells.push_back(
          {{"destination", c.destination}, {"loss_ratio_last_iteration", number_or_null(c.loss_ratio)}});
    meshes.push_back({{"group", m.group}, {"destinations", m.destinations}, {"cells", cells}});
  }
  nlohmann::json out = {{"probe_name", status.probe_name},
                        {"version", status.version},
                        {"generated_at", static_cast<long long>(std::time(nullptr))},
                        {"process",
                         {{"worker_restarts", status.worker_restarts},
                          {"send_errors", status.send_errors},
                          {"capture_packets_dropped", status.capture_dropped},
                          {"last_reload_failed", status.reload_failed != 0},
                          {"iteration_seconds", number_or_null(status.iteration_seconds)}}},
                        {"targets_shown", status.rows.size()},
                        {"targets_total", status.rows_total},
                        {"targets", rows},
                        {"history_iterations", kHistoryIterations},
                        {"worst_paths", paths},
                        {"lossy_paths_total", status.paths_total},
                        {"mesh", meshes}};
  return out.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string status_html(const StatusSnapshot& status) {
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
  h += "<meta name=\"viewport\" content=\"width=device-width\">";
  h += fmt::format("<title>netprobe {}</title>", escape_html(status.probe_name));
  h += "<style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}"
       "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
       "td.l,th.l{text-align:left}th{background:#f4f4f4}.bad{color:#b00;font-weight:bold}"
       "dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{color:#666}"
       ".hist i{display:inline-block;min-width:2.2em;margin-right:1px;font:11px monospace;font-style:normal;"
       "text-align:center}svg{vertical-align:middle}"
       ".mesh{display:grid;grid-template-columns:repeat(auto-fill,minmax(7.5em,1fr));gap:2px;max-width:90em}"
       ".mesh div{padding:2px 4px;font:11px monospace;text-align:right;overflow:hidden}"
       ".mesh b{float:left;font-weight:normal;max-width:5.5em;overflow:hidden;text-overflow:ellipsis;"
       "white-space:nowrap}</style>";
  h += "</head><body>\n";
  h += fmt::format("<h1>netprobe <code>{}</code></h1>\n", escape_html(status.probe_name));
  char when[64];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
  h += fmt::format(
      "<p>version {} &middot; {} &middot; <a href=\"/status.json\">JSON</a> &middot; "
      "<a href=\"/metrics\">metrics</a></p>\n",
      escape_html(status.version), when);
  h += "<h2>Process</h2>\n<dl>";
  h += fmt::format("<dt>worker restarts</dt><dd{}>{:g}</dd>",
                   status.worker_restarts > 0 ? " class=\"bad\"" : "", status.worker_restarts);
  h += fmt::format("<dt>send errors</dt><dd{}>{:g}</dd>", status.send_errors > 0 ? " class=\"bad\"" : "",
                   status.send_errors);
  h += fmt::format("<dt>capture drops</dt><dd{}>{:g}</dd>",
                   status.capture_dropped > 0 ? " class=\"bad\"" : "", status.capture_dropped);
  h += fmt::format("<dt>last reload</dt><dd{}>{}</dd>", status.reload_failed != 0 ? " class=\"bad\"" : "",
                   status.reload_failed != 0 ? "FAILED" : "ok");
  h += fmt::format("<dt>iteration time</dt><dd>{}</dd></dl>\n", millis(status.iteration_seconds));
  h += fmt::format("<h2>Targets</h2>\n<p>{} of {} (target, group) pairs, worst first.</p>\n",
                   status.rows.size(), status.rows_total);
  std::vector<std::string> percentiles;
  for (const auto& r : status.rows)
    for (const auto& [p, v] : r.rtt)
      if (std::find(percentiles.begin(), percentiles.end(), p) == percentiles.end()) percentiles.push_back(p);
  std::sort(percentiles.begin(), percentiles.end(), [](const std::string& a, const std::string& b) {
    return std::atof(a.c_str()) < std::atof(b.c_str());
  });
  h += "<table><tr><th class=\"l\">target</th><th class=\"l\">group</th><th class=\"l\">type</th>"
       "<th>loss (last iteration)</th><th>loss (since start)</th><th>sent</th>";
  for (const auto& p : percentiles) h += fmt::format("<th>p{} RTT</th>", escape_html(p));
  h += fmt::format(
      "<th>worst path loss</th><th>lossy paths</th><th class=\"l\">last {} iterations: loss % "
      "&middot; RTT p50 / p95</th></tr>\n",
      kHistoryIterations);
  for (const auto& r : status.rows) {
    const double since = r.sent > 0 ? r.lost / r.sent : -1;
    h += fmt::format("<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{} {}</td>",
                     escape_html(r.destination), escape_html(r.group), escape_html(r.type),
                     escape_html(r.address_family));
    h += fmt::format("<td style=\"background:{}\">{}</td>", loss_colour(r.last_loss), percent(r.last_loss));
    h += fmt::format("<td style=\"background:{}\">{}</td><td>{:g}</td>", loss_colour(since), percent(since),
                     r.sent);
    for (const auto& p : percentiles) {
      const auto it = r.rtt.find(p);
      h += fmt::format("<td>{}</td>", it == r.rtt.end() ? "-" : millis(it->second));
    }
    h += fmt::format("<td style=\"background:{}\">{}</td>", loss_colour(r.worst_path_loss),
                     percent(r.worst_path_loss));
    h += fmt::format("<td>{}</td>",
                     r.paths < 0 ? std::string("-") : fmt::format("{:g} / {:g}", r.lossy_paths, r.paths));
    h += fmt::format("<td class=\"l\">{}</td></tr>\n", history_html(r.history));
  }
  h += "</table>\n";
  if (!status.worst_paths.empty()) {
    h += fmt::format(
        "<h2>Worst paths</h2>\n<p>{} of {} flows found lossy over the path window, worst first "
        "(docs/paths.md in the repository).</p>\n",
        status.worst_paths.size(), status.paths_total);
    h += "<table><tr><th class=\"l\">target</th><th class=\"l\">group</th><th class=\"l\">type</th>"
         "<th class=\"l\">source</th><th>source port</th><th class=\"l\">destination address</th>"
         "<th>loss</th><th>sent</th></tr>\n";
    for (const auto& p : status.worst_paths)
      h += fmt::format(
          "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{} {}</td><td "
          "class=\"l\">{}</td>"
          "<td>{}</td><td class=\"l\">{}</td><td style=\"background:{}\">{}</td><td>{}</td></tr>\n",
          escape_html(p.destination), escape_html(p.group), escape_html(p.type),
          escape_html(p.address_family), p.src.empty() ? "-" : escape_html(p.src), escape_html(p.src_port),
          p.dst.empty() ? "-" : escape_html(p.dst), loss_colour(p.loss_ratio), percent(p.loss_ratio),
          p.sent < 0 ? "-" : fmt::format("{:g}", p.sent));
    h += "</table>\n";
  }
  for (const auto& m : status.meshes) {
    h += fmt::format(
        "<h2>Mesh: group <code>{}</code></h2>\n<p>{} destinations by name, loss of the last iteration in "
        "%{}.</p>\n"
        "<div class=\"mesh\">",
        escape_html(m.group), m.destinations,
        m.cells.size() < m.destinations ? fmt::format(" (the first {} shown)", m.cells.size()) : "");
    for (const auto& c : m.cells)
      h += fmt::format("<div style=\"background:{}\" title=\"{}: {}\"><b>{}</b>{}</div>",
                       loss_colour(c.loss_ratio), escape_html(c.destination), percent(c.loss_ratio),
                       escape_html(c.destination), short_percent(c.loss_ratio));
    h += "</div>\n";
  }
  h += "</body></html>\n";
  return h;
}

}  // namespace netprobe
