#include "engine/run/report.hpp"

#include "engine/core/text.hpp"
#include "engine/log/log.hpp"
#include "engine/run/report_html.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <fstream>
#include <map>

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace engine::run {

namespace {
std::string iso(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(t)));
}
// With milliseconds, for step and span boundaries.
std::string iso_ms(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(t)), static_cast<int>(ms));
}
double round_ms(double s) { return static_cast<double>(static_cast<long long>(s * 1000 + 0.5)) / 1000; }
}  // namespace

Report& report() {
  static Report r;
  return r;
}

void Report::begin(const std::string& run_id, const std::string& runbook, const std::string& path, nlohmann::json params) {
  std::lock_guard lock(mu_);
  started_ = std::chrono::system_clock::now();
  mono_started_ = std::chrono::steady_clock::now();
  spans_dropped_ = 0;
  doc_ = {{"run", run_id}, {"runbook", runbook}, {"path", path}, {"params", std::move(params)}, {"started", iso(started_)},
          {"warnings", nlohmann::json::array()}, {"errors", nlohmann::json::array()},
          {"plan", nlohmann::json::array()}, {"steps", nlohmann::json::array()}, {"spans", nlohmann::json::array()}};
  hosts_.clear();
  unreachable_.clear();
  any_unreachable_.store(false, std::memory_order_relaxed);
}

void Report::note(std::string_view level, std::string_view host, std::string_view msg, const nlohmann::json& fields) {
  std::lock_guard lock(mu_);
  if (doc_.empty()) return;
  nlohmann::json e = {{"time", iso(std::chrono::system_clock::now())}, {"msg", msg}};
  if (!host.empty()) e["host"] = host;
  if (fields.is_object() && !fields.empty()) e["fields"] = fields;
  doc_[level == "error" ? "errors" : "warnings"].push_back(std::move(e));
}

void Report::hosts(HostOutcomes outcomes) {
  std::lock_guard lock(mu_);
  if (doc_.empty()) return;
  if (hosts_.empty()) {
    hosts_ = std::move(outcomes);
    return;
  }
  // A later fleet.each: its outcomes replace the earlier ones of the same hosts. The index holds
  // views of the names in hosts_, which the reserve keeps from moving.
  hosts_.reserve(hosts_.size() + outcomes.size());
  std::unordered_map<std::string_view, size_t> index;
  index.reserve(hosts_.size());
  for (size_t i = 0; i < hosts_.size(); ++i) index[hosts_[i].name] = i;
  for (auto& o : outcomes) {
    if (auto it = index.find(o.name); it != index.end()) {
      auto& h = hosts_[it->second];
      h.status = std::move(o.status), h.error = std::move(o.error), h.seconds = o.seconds;
      h.started = o.started, h.phase = std::move(o.phase);
    } else {
      hosts_.push_back(std::move(o));
      index.emplace(hosts_.back().name, hosts_.size() - 1);
    }
  }
}

void Report::unreachable(std::string_view host, std::string why) {
  std::lock_guard lock(mu_);
  if (!unreachable_.contains(host)) unreachable_.emplace(host, std::move(why));
  any_unreachable_.store(true, std::memory_order_relaxed);
}

void Report::left_out(std::vector<std::string> hosts) {
  std::lock_guard lock(mu_);
  doc_["left_out"] = std::move(hosts);
}

void Report::reached(std::string_view host) {
  if (!any_unreachable_.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(mu_);
  if (auto it = unreachable_.find(host); it != unreachable_.end()) unreachable_.erase(it);
}

std::vector<std::pair<std::string, std::string>> Report::unreachable_failed() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  if (unreachable_.empty()) return out;
  std::map<std::string_view, std::string_view> last;  // a name listed twice: its last outcome stands
  for (const auto& h : hosts_) last[h.name] = h.status;
  for (const auto& [host, why] : unreachable_)
    if (auto it = last.find(host); it == last.end() || it->second == "failed") out.emplace_back(host, why);
  return out;
}

std::vector<const Report::HostOutcome*> Report::hosts_by_name() const {
  std::vector<const HostOutcome*> out;
  out.reserve(hosts_.size());
  for (const auto& h : hosts_) out.push_back(&h);
  std::stable_sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->name < b->name; });
  // A host listed twice in one fleet.each: its last outcome stands.
  size_t kept = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (i + 1 < out.size() && out[i + 1]->name == out[i]->name) continue;
    out[kept++] = out[i];
  }
  out.resize(kept);
  return out;
}

nlohmann::json Report::hosts_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& h : hosts_) {
    nlohmann::json e(nlohmann::json::value_t::object);
    e["status"] = h.status;
    e["seconds"] = h.seconds;
    if (h.started >= 0) e["start"] = round_ms(h.started);
    if (!h.phase.empty()) e["phase"] = h.phase;
    if (!h.error.empty()) e["error"] = h.error;
    out[h.name] = std::move(e);
  }
  return out;
}

void Report::step(const std::string& key, const std::string& status, double seconds, const nlohmann::json& results,
                  const std::string& error) {
  std::lock_guard lock(mu_);
  if (doc_.empty()) return;
  auto now = std::chrono::system_clock::now();
  double end = std::chrono::duration<double>(std::chrono::steady_clock::now() - mono_started_).count();
  auto wall_start = now - std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds));
  nlohmann::json e = {{"step", key}, {"status", status}, {"seconds", seconds}, {"start", round_ms(std::max(0.0, end - seconds))},
                      {"end", round_ms(end)}, {"started", iso_ms(wall_start)}, {"ended", iso_ms(now)}};
  if (!results.is_null() && !results.empty()) e["results"] = results;
  if (!error.empty()) e["error"] = error;
  doc_["steps"].push_back(std::move(e));
}

double Report::clock() const { return clock(std::chrono::steady_clock::now()); }

double Report::clock(std::chrono::steady_clock::time_point at) const {
  return std::chrono::duration<double>(at - mono_started_).count();
}

void Report::span(std::string_view kind, std::string_view host, std::string_view name, double start, std::string_view outcome) {
  double end = clock();
  std::lock_guard lock(mu_);
  if (doc_.empty()) return;
  auto& spans = doc_["spans"];
  if (spans.size() >= kMaxSpans) {
    ++spans_dropped_;
    return;
  }
  // Member by member: an initializer list builds a two-element array per member first, then
  // copies it (a fan-out records one span per command).
  nlohmann::json e(nlohmann::json::value_t::object);
  e["kind"] = kind;
  e["host"] = host;
  e["name"] = text::prefix(name, 120);
  e["start"] = round_ms(start);
  e["end"] = round_ms(end);
  e["outcome"] = outcome;
  spans.push_back(std::move(e));
}

void Report::plan(std::string_view host, std::string_view step, std::string_view action, const nlohmann::json& fields) {
  std::lock_guard lock(mu_);
  if (doc_.empty()) return;
  nlohmann::json e = {{"host", host}, {"step", step}, {"action", action}};
  if (fields.is_object() && !fields.empty()) e["fields"] = fields;
  doc_["plan"].push_back(std::move(e));
}

std::string Report::plan_text() const {
  std::lock_guard lock(mu_);
  if (doc_.empty() || doc_["plan"].empty()) return "PLAN: nothing would change\n";
  // Hosts in the order they first appear; steps in order within each host.
  std::vector<std::string> hosts;
  for (const auto& e : doc_["plan"]) {
    std::string h = e.value("host", "");
    if (std::find(hosts.begin(), hosts.end(), h) == hosts.end()) hosts.push_back(h);
  }
  std::string out = "PLAN (dry run: nothing was changed)\n";
  for (const auto& h : hosts) {
    out += "  " + (h.empty() ? std::string("(run)") : h) + "\n";
    std::string last_step = "\x01";
    for (const auto& e : doc_["plan"]) {
      if (e.value("host", "") != h) continue;
      std::string st = e.value("step", "");
      if (st != last_step) {
        out += "    step " + (st.empty() ? std::string("(outside a step)") : st) + "\n";
        last_step = st;
      }
      out += "      " + e.value("action", "");
      if (e.contains("fields"))
        for (auto it = e["fields"].begin(); it != e["fields"].end(); ++it)
          out += " " + it.key() + "=" + (it->is_string() ? it->get<std::string>() : it->dump());
      out += "\n";
    }
  }
  return out;
}

std::string Report::recap_text() const {
  std::lock_guard lock(mu_);
  if (doc_.empty() || hosts_.empty()) return "";
  std::string out = "RECAP\n";
  size_t width = 4;
  auto sorted = hosts_by_name();
  for (auto* h : sorted) width = std::max(width, h->name.size());
  // A host's status is its last fleet.each's: the phase says which ("ok in preflight" is not "upgraded").
  size_t phase_width = 0;
  for (auto* h : sorted) phase_width = std::max(phase_width, h->phase.size());
  for (auto* h : sorted)
    out += fmt::format("  {:<{}}  {:<12} {:<{}} {:>8.1f}s  {}\n", h->name, width, h->status,
                       h->phase.empty() ? std::string() : "in " + h->phase, phase_width ? phase_width + 3 : 0, h->seconds, h->error);
  return out;
}

namespace {
std::string xml(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        // XML 1.0 allows no control characters but tab and newlines.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t' && c != '\r') out += '?';
        else out += c;
    }
  }
  return out;
}
}  // namespace

std::string Report::junit() const { return junit_of(log::redact_json(snapshot())); }

std::string junit_of(const nlohmann::json& doc) {
  struct Case {
    std::string name, status, error;
    double seconds;
  };
  std::map<std::string, std::vector<Case>> suites;  // host ("(run)" for steps outside fleet.each) → cases
  for (const auto& s : doc.value("steps", nlohmann::json::array())) {
    std::string key = s.value("step", "");
    auto slash = key.find('/');
    std::string host = slash == std::string::npos ? "(run)" : key.substr(0, slash);
    suites[host].push_back({slash == std::string::npos ? key : key.substr(slash + 1), s.value("status", ""), s.value("error", ""),
                            s.value("seconds", 0.0)});
  }
  if (doc.contains("hosts"))
    for (auto it = doc["hosts"].begin(); it != doc["hosts"].end(); ++it)
      suites[it.key()].push_back({"(host outcome)", it->value("status", ""), it->value("error", ""), it->value("seconds", 0.0)});
  std::string runbook = doc.value("runbook", "runbook");
  std::string body;
  size_t tests = 0, failures = 0, skipped = 0;
  for (const auto& [host, cases] : suites) {
    size_t f = 0, sk = 0;
    double t = 0;
    std::string cs;
    for (const auto& c : cases) {
      t += c.seconds;
      cs += fmt::format("    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3f}\"", xml(runbook), xml(host), xml(c.name), c.seconds);
      if (c.status == "failed" || c.status == "cancelled") {
        ++f;
        cs += fmt::format(">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n", xml(c.error.substr(0, 200)), xml(c.error));
      } else if (c.status == "skipped" || c.status == "not started") {
        ++sk;
        cs += fmt::format(">\n      <skipped message=\"{}\"/>\n    </testcase>\n", xml(c.error.empty() ? c.status : c.error));
      } else {
        cs += "/>\n";
      }
    }
    body += fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3f}\">\n{}  </testsuite>\n",
                        xml(host), cases.size(), f, sk, t, cs);
    tests += cases.size(), failures += f, skipped += sk;
  }
  return fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3f}\">\n{}</testsuites>\n",
                     xml(runbook), tests, failures, skipped, doc.value("seconds", 0.0), body);
}

nlohmann::json Report::snapshot() const {
  std::lock_guard lock(mu_);
  nlohmann::json out = doc_;
  if (!out.empty()) out["hosts"] = hosts_json();
  return out;
}

std::string Report::finish(const std::string& dir, int exit_code) {
  std::lock_guard lock(mu_);
  auto now = std::chrono::system_clock::now();
  doc_["finished"] = iso(now);
  doc_["seconds"] = std::chrono::duration<double>(now - started_).count();
  doc_["exit_code"] = exit_code;
  doc_["outcome"] = exit_code == 0 ? "ok" : exit_code == 130 ? "interrupted" : exit_code == 1 ? "failed" : "error";
  doc_["hosts"] = hosts_json();
  if (spans_dropped_) doc_["spans_dropped"] = spans_dropped_;
  std::string path = dir + "/report.json", tmp = path + ".tmp";
  // Redacted as a whole: a value can become known as a secret after it was recorded (a param later
  // used as a sudo password, a value marked with log.secret()). Once, for both files, in place:
  // the run is over, and a copy of the whole document cost a tenth of a second at 100,000 hosts.
  log::redact_json_in_place(doc_);
  const nlohmann::json& redacted = doc_;
  {
    std::ofstream f(tmp);
    f << redacted.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  // The same, drawn: report.html beside it (a page a person opens; report.json stays the record).
  std::string html = dir + "/report.html", htmp = html + ".tmp";
  {
    std::ofstream f(htmp);
    f << html_report(redacted);
    f.flush();
    if (!f) {
      std::remove(htmp.c_str());
      throw std::runtime_error("cannot write " + html + ": " + std::strerror(errno));
    }
  }
  if (std::rename(htmp.c_str(), html.c_str()) != 0) throw std::runtime_error("cannot write " + html + ": " + std::strerror(errno));
  return path;
}

}  // namespace engine::run
