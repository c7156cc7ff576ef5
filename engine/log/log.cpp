#include "engine/log/log.hpp"

#include <chrono>
#include <algorithm>
#include <optional>
#include <vector>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "engine/run/report.hpp"

namespace engine::log {

namespace {

struct State {
  std::vector<std::string> secrets;
  std::string step;
  Options opts;
  std::shared_ptr<spdlog::logger> console;
  std::shared_ptr<spdlog::logger> file;
};

State& state() {
  static State s;
  return s;
}

std::string now_iso() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(now)), ms);
}

std::string field_value(const nlohmann::json& v) {
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    bool plain = !s.empty() && s.find_first_of(" \t\n\"=") == std::string::npos;
    return plain ? s : nlohmann::json(s).dump();
  }
  return v.dump();
}

nlohmann::json json_line(Level level, std::string_view host, std::string_view msg, const nlohmann::json& fields) {
  nlohmann::json j = {{"ts", now_iso()}, {"level", level_name(level)}};
  if (!host.empty()) j["host"] = host;
  j["msg"] = msg;
  if (fields.is_object() && !fields.empty()) j["fields"] = fields;
  return j;
}

}  // namespace

std::optional<Level> parse_level(std::string_view name) {
  if (name == "debug") return Level::debug;
  if (name == "info") return Level::info;
  if (name == "warn" || name == "warning") return Level::warn;
  if (name == "error") return Level::error;
  return std::nullopt;
}

std::string_view level_name(Level l) {
  switch (l) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
  }
  return "info";
}

std::string format_text(Level level, std::string_view host, std::string_view msg, const nlohmann::json& fields,
                        bool color) {
  static const char* names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
  static const char* colors[] = {"\033[2m", "", "\033[33m", "\033[31m"};
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::string out = fmt::format("{:%H:%M:%S}.{:03d} ", fmt::localtime(std::chrono::system_clock::to_time_t(now)), ms);
  int i = static_cast<int>(level);
  if (color) out += colors[i];
  out += names[i];
  if (color && *colors[i]) out += "\033[0m";
  out += " ";
  if (!host.empty()) out += fmt::format("[{}] ", host);
  out += msg;
  if (fields.is_object())
    for (auto it = fields.begin(); it != fields.end(); ++it) out += fmt::format(" {}={}", it.key(), field_value(it.value()));
  return out;
}

void setup(const Options& opts) {
  auto& s = state();
  s.opts = opts;
  if (!s.console) {
    s.console = std::make_shared<spdlog::logger>("console", std::make_shared<spdlog::sinks::stdout_sink_mt>());
    s.console->set_pattern("%v");
    s.console->set_level(spdlog::level::trace);
    s.console->flush_on(spdlog::level::trace);  // a log line is for a person watching now
  }
  s.file.reset();
  if (!opts.file.empty()) {
    s.file = std::make_shared<spdlog::logger>("file", std::make_shared<spdlog::sinks::basic_file_sink_mt>(opts.file));
    s.file->set_pattern("%v");
    s.file->set_level(spdlog::level::trace);
    s.file->flush_on(spdlog::level::trace);
  }
}

void add_secret(const std::string& value) {
  auto& s = state();
  if (value.size() < 4 || std::find(s.secrets.begin(), s.secrets.end(), value) != s.secrets.end()) return;
  s.secrets.push_back(value);
  // Longest first, so a secret containing another is replaced whole.
  std::sort(s.secrets.begin(), s.secrets.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
}

void set_current_step(const std::string& step) { state().step = step; }

std::string redact(std::string_view text) {
  std::string out(text);
  for (const auto& secret : state().secrets) {
    size_t pos = 0;
    while ((pos = out.find(secret, pos)) != std::string::npos) {
      out.replace(pos, secret.size(), "<secret>");
      pos += 8;
    }
  }
  return out;
}

nlohmann::json redact_json(const nlohmann::json& value) {
  if (state().secrets.empty()) return value;
  if (value.is_string()) return redact(value.get_ref<const std::string&>());
  if (value.is_array() || value.is_object()) {
    nlohmann::json out = value;
    for (auto it = out.begin(); it != out.end(); ++it) *it = redact_json(*it);
    return out;
  }
  return value;
}

bool is_secret_name(std::string_view name) {
  std::string n(name);
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* kind : {"password", "passwd", "_pass", "token", "secret", "private_key", "passphrase", "api_key"})
    if (n.find(kind) != std::string::npos && n.find("_file") == std::string::npos) return true;
  return false;
}

void emit(Level level, std::string_view host, std::string_view raw_msg, const nlohmann::json& raw_fields) {
  auto& s = state();
  if (!s.console) setup(s.opts);
  std::string msg_text = s.secrets.empty() ? std::string(raw_msg) : redact(raw_msg);
  std::string_view msg = msg_text;
  nlohmann::json fields = redact_json(raw_fields);
  if (level >= s.opts.level) {
    if (s.opts.format == Format::json)
      s.console->info(json_line(level, host, msg, fields).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    else
      s.console->info(format_text(level, host, msg, fields, s.opts.color));
    if (level >= Level::warn) s.console->flush();
  }
  if (s.file) s.file->info(json_line(level, host, msg, fields).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  // What went wrong stays findable after the scrollback is gone.
  if (level >= Level::warn) run::report().note(level_name(level), host, msg, fields);
  // A dry run's "would ..." lines are its plan.
  if (msg.rfind("dry-run: would", 0) == 0) run::report().plan(host, s.step, msg.substr(9), fields);
}

void flush() {
  auto& s = state();
  if (s.console) s.console->flush();
  if (s.file) s.file->flush();
}

}  // namespace engine::log
