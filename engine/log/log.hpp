// Run logs: human lines with a host prefix, or one JSON object per line, on stdout; and always a
// JSON-lines file in the run's directory with every level. Fields travel as JSON, never glued text.
#pragma once
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace engine::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };
enum class Format { text, json };

struct Options {
  Format format = Format::text;
  Level level = Level::info;
  std::string file;  // "" for none
  bool color = false;
};

// The run log rotates at kRunLogBytes into run.1.log ... run.<kRunLogFiles>.log (oldest dropped),
// so a run's logs take at most (kRunLogFiles + 1) x kRunLogBytes of disk.
constexpr size_t kRunLogBytes = 64u << 20;
constexpr size_t kRunLogFiles = 3;

void setup(const Options& opts);
// The first failure to write the run log ("" while there was none): the run then fails, naming it.
std::string file_error();
void emit(Level level, std::string_view host, std::string_view msg, const nlohmann::json& fields = nullptr);
// The same line for the run log, the report and JSON consoles, but not a text console: for what the
// engine then says once, as a block, on stderr (a run's failure).
void emit_quiet(Level level, std::string_view host, std::string_view msg, const nlohmann::json& fields = nullptr);
void flush();

// "debug" → Level::debug ...; nullopt for an unknown name.
std::optional<Level> parse_level(std::string_view name);
std::string_view level_name(Level l);

// Secrets: every registered value is replaced by "<secret>" wherever a log line, a field, the run
// log, the report or a journaled result would show it. Values shorter than 4 characters are not
// registered (they would blank out ordinary words).
void add_secret(const std::string& value);

// The step the running task is in ("" outside one): the runtime sets it around each resume, so a
// dry run's plan can group what would happen by host and step.
void set_current_step(const std::string& step);
std::string redact(std::string_view text);
nlohmann::json redact_json(const nlohmann::json& value);
// The same, on the value itself (report.json at the run's end: no copy of the whole document).
void redact_json_in_place(nlohmann::json& value);

// Variable names whose values are secrets by their kind: passwords, tokens, private keys.
bool is_secret_name(std::string_view name);

// The live table on a terminal: one row per host (host, step, elapsed, state) under the log
// lines, redrawn at most 10 times a second. Only with text logs on a TTY.
void progress_enable(bool on);
// A new phase (a top-level fleet.each): the table starts over with its hosts.
void progress_phase(const std::string& name, size_t hosts);
void progress_host(const std::string& host, const std::string& state);  // running, ok, failed, skipped
void progress_step(const std::string& host, const std::string& step);
void progress_tick();    // the runtime calls it every 100 ms: redraws when something changed
void progress_finish();  // erases the table for good (before the recap)

// The text form of one line, exposed for tests: "12:00:01.234 INFO  [node1] drained pods=12".
std::string format_text(Level level, std::string_view host, std::string_view msg, const nlohmann::json& fields,
                        bool color);

}  // namespace engine::log
