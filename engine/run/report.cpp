#include "engine/run/report.hpp"

#include "engine/log/log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <fstream>

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace engine::run {

namespace {
std::string iso(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(t)));
}
}  // namespace

Report& report() {
  static Report r;
  return r;
}

void Report::begin(const std::string& run_id, const std::string& runbook, const std::string& path, nlohmann::json params) {
  std::lock_guard lock(mu_);
  started_ = std::chrono::system_clock::now();
  doc_ = {{"run", run_id}, {"runbook", runbook}, {"path", path}, {"params", std::move(params)}, {"started", iso(started_)},
          {"warnings", nlohmann::json::array()}, {"errors", nlohmann::json::array()},
          {"plan", nlohmann::json::array()}, {"steps", nlohmann::json::array()}};
  hosts_.clear();
}

void Report::note(std::string_view level, std::string_view host, std::string_view msg, const nlohmann::json& fields) {
  std::lock_guard lock(mu_);
  if (doc_.empty()) return;
  nlohmann::json e = {{"time", iso(std::chrono::system_clock::now())}, {"msg", msg}};
  if (!host.empty()) e["host"] = host;
  if (fields.is_object() && !fields.empty()) e["fields"] = fields;
  doc_[level == "error" ? "errors" : "warnings"].push_back(std::move(e));
}

void Report::hosts(std::vector<HostOutcome> outcomes) {
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
    } else {
      hosts_.push_back(std::move(o));
      index.emplace(hosts_.back().name, hosts_.size() - 1);
    }
  }
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
    nlohmann::json e = {{"status", h.status}, {"seconds", h.seconds}};
    if (!h.error.empty()) e["error"] = h.error;
    out[h.name] = std::move(e);
  }
  return out;
}

void Report::step(const std::string& key, const std::string& status, double seconds, const nlohmann::json& results,
                  const std::string& error) {
  std::lock_guard lock(mu_);
  if (doc_.empty()) return;
  nlohmann::json e = {{"step", key}, {"status", status}, {"seconds", seconds}};
  if (!results.is_null() && !results.empty()) e["results"] = results;
  if (!error.empty()) e["error"] = error;
  doc_["steps"].push_back(std::move(e));
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
  for (auto* h : sorted) out += fmt::format("  {:<{}}  {:<12} {:>8.1f}s  {}\n", h->name, width, h->status, h->seconds, h->error);
  return out;
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
  std::string path = dir + "/report.json", tmp = path + ".tmp";
  {
    // Redacted as a whole: a value can become known as a secret after it was recorded (a param
    // later used as a sudo password, a value marked with log.secret()).
    std::ofstream f(tmp);
    f << log::redact_json(doc_).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  return path;
}

}  // namespace engine::run
