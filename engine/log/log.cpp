#include "engine/log/log.hpp"

#include <sys/ioctl.h>
#include <unistd.h>
#include "engine/core/text.hpp"

#include <chrono>
#include <algorithm>
#include <optional>
#include <vector>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "engine/run/report.hpp"

namespace engine::log {

namespace {

struct Row {
  std::string host, step, state;
  std::chrono::steady_clock::time_point started, ended;
};

struct Progress {
  bool on = false;
  std::string phase;
  size_t total = 0;  // hosts in this phase
  std::chrono::steady_clock::time_point run_started = std::chrono::steady_clock::now();
  std::vector<Row> rows;
  size_t drawn = 0;  // lines of the table on screen now
  bool dirty = false;
  std::chrono::steady_clock::time_point last_draw{};
};

struct State {
  std::vector<std::string> secrets;
  std::string step;
  Progress progress;
  Options opts;
  std::shared_ptr<spdlog::logger> console;
  std::shared_ptr<spdlog::logger> file;
  std::string file_error;
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
  if (msg.find('\n') != std::string_view::npos) {
    // Several lines (a table a runbook prints): they start on a line of their own, so the first
    // one lines up with the rest instead of following the timestamp. The prefix line stands for a
    // leading blank line.
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
    if (msg.front() == '\n') msg.remove_prefix(1);
  }
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
    s.file = std::make_shared<spdlog::logger>(
        "file", std::make_shared<spdlog::sinks::rotating_file_sink_mt>(opts.file, kRunLogBytes, kRunLogFiles));
    s.file->set_pattern("%v");
    // A full disk: recorded once (the run fails at its end, naming the file), not printed per line.
    s.file->set_error_handler([file = opts.file](const std::string& msg) {
      auto& st = state();
      if (!st.file_error.empty()) return;
      st.file_error = file + ": " + msg;
      std::fprintf(stderr, "engine: cannot write the run log %s\n", st.file_error.c_str());
    });
    s.file->set_level(spdlog::level::trace);
    s.file->flush_on(spdlog::level::trace);
  }
}

std::string file_error() { return state().file_error; }

void add_secret(const std::string& value) {
  auto& s = state();
  if (value.size() < 4 || std::find(s.secrets.begin(), s.secrets.end(), value) != s.secrets.end()) return;
  s.secrets.push_back(value);
  // Longest first, so a secret containing another is replaced whole.
  std::sort(s.secrets.begin(), s.secrets.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
}

void set_current_step(const std::string& step) { state().step = step; }

namespace {

Row& row_of(Progress& p, const std::string& host) {
  for (auto& r : p.rows)
    if (r.host == host) return r;
  p.rows.push_back(Row{host, "", "waiting", {}, {}});
  return p.rows.back();
}

void erase_table(Progress& p) {
  if (p.drawn == 0) return;
  std::fprintf(stdout, "\033[%zuF\033[J", p.drawn);  // to the table's first line, clear to the end
  p.drawn = 0;
}

void draw_table(Progress& p) {
  if (p.rows.empty()) return;
  auto now = std::chrono::steady_clock::now();
  // Running hosts first, then the most recently finished; at most 20 rows.
  std::vector<const Row*> shown;
  for (const auto& r : p.rows)
    if (r.state == "running") shown.push_back(&r);
  for (auto it = p.rows.rbegin(); it != p.rows.rend() && shown.size() < 20; ++it)
    if (it->state != "running" && it->state != "waiting") shown.push_back(&*it);
  size_t running = 0, done = 0;
  for (const auto& r : p.rows) running += r.state == "running", done += r.state != "waiting" && r.state != "running";
  size_t total = std::max(p.total, p.rows.size());
  // A line wider than the terminal wraps, and the next erase would leave its tail behind.
  winsize ws{};
  size_t width = ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col - 1 : 119;
  auto fit = [width](std::string s) { return s.size() > width ? s.substr(0, width) : s; };
  double elapsed = std::chrono::duration<double>(now - p.run_started).count();
  std::string out = "\033[1m" + fit(fmt::format("{}  {}/{} hosts done, {} running  {:.0f}s", p.phase.empty() ? "run" : p.phase,
                                                done, total, running, elapsed)) + "\033[0m\n";
  out += fit(fmt::format("{:<24} {:<28} {:>9}  {}", "HOST", "STEP", "ELAPSED", "STATE")) + "\n";
  size_t lines = 2;
  for (const Row* r : shown) {
    if (lines > 21) break;
    auto end = r->state == "running" ? now : r->ended;
    double secs = std::chrono::duration<double>(end - r->started).count();
    out += fit(fmt::format("{:<24} {:<28} {:>8.1f}s  {}", r->host.substr(0, 24), r->step.substr(0, 28), secs, r->state)) + "\n";
    ++lines;
  }
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  p.drawn = lines;
  p.dirty = false;
  p.last_draw = now;
}

}  // namespace

void progress_enable(bool on) {
  state().progress.on = on;
  state().progress.run_started = std::chrono::steady_clock::now();
}

void progress_phase(const std::string& name, size_t hosts) {
  auto& p = state().progress;
  if (!p.on) return;
  p.phase = name;
  p.total = hosts;
  p.rows.clear();  // the last phase's rows are history (the log has them)
  p.dirty = true;
}

void progress_host(const std::string& host, const std::string& st) {
  auto& p = state().progress;
  if (!p.on || host.empty()) return;
  Row& r = row_of(p, host);
  if (st == "running") r.started = std::chrono::steady_clock::now();
  else r.ended = std::chrono::steady_clock::now();
  r.state = st;
  p.dirty = true;
}

void progress_step(const std::string& host, const std::string& step) {
  auto& p = state().progress;
  if (!p.on || host.empty()) return;
  row_of(p, host).step = step;
  p.dirty = true;
}

void progress_tick() {
  auto& p = state().progress;
  if (!p.on) return;
  // While hosts run, their elapsed time moves: redraw even when nothing else changed.
  bool moving = std::any_of(p.rows.begin(), p.rows.end(), [](const Row& r) { return r.state == "running"; });
  if (!p.dirty && !moving) return;
  if (std::chrono::steady_clock::now() - p.last_draw < std::chrono::milliseconds(100)) return;
  erase_table(p);
  draw_table(p);
}

void progress_finish() {
  auto& p = state().progress;
  if (!p.on) return;
  erase_table(p);
  std::fflush(stdout);
  p.on = false;
}

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

void redact_json_in_place(nlohmann::json& value) {
  if (state().secrets.empty()) return;
  if (value.is_string()) {
    auto& s = value.get_ref<std::string&>();
    for (const auto& secret : state().secrets)
      if (s.find(secret) != std::string::npos) {
        s = redact(s);
        break;
      }
  } else if (value.is_array() || value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) redact_json_in_place(*it);
  }
}

nlohmann::json redact_json(const nlohmann::json& value) {
  nlohmann::json out = value;
  redact_json_in_place(out);
  return out;
}

bool is_secret_name(std::string_view name) {
  std::string n = text::lower(std::string(name));
  for (const char* kind : {"password", "passwd", "_pass", "token", "secret", "private_key", "passphrase", "api_key"})
    if (n.find(kind) != std::string::npos && n.find("_file") == std::string::npos) return true;
  return false;
}

void emit_quiet(Level level, std::string_view host, std::string_view msg, const nlohmann::json& fields) {
  auto& s = state();
  if (s.opts.format == Format::json) return emit(level, host, msg, fields);
  Level saved = s.opts.level;
  s.opts.level = static_cast<Level>(static_cast<int>(Level::error) + 1);  // above every level: the console stays quiet
  emit(level, host, msg, fields);
  s.opts.level = saved;
}

void emit(Level level, std::string_view host, std::string_view raw_msg, const nlohmann::json& raw_fields) {
  auto& s = state();
  if (!s.console) setup(s.opts);
  std::string msg_text = s.secrets.empty() ? std::string(raw_msg) : redact(raw_msg);
  std::string_view msg = msg_text;
  nlohmann::json fields = redact_json(raw_fields);
  if (level >= s.opts.level && s.progress.on) {
    // The line scrolls above the table; the table comes back at the next tick (at most 10/s).
    erase_table(s.progress);
    std::fputs((format_text(level, host, msg, fields, s.opts.color) + "\n").c_str(), stdout);
    s.progress.dirty = true;
    if (std::chrono::steady_clock::now() - s.progress.last_draw >= std::chrono::milliseconds(100)) draw_table(s.progress);
    std::fflush(stdout);
  } else if (level >= s.opts.level) {
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
