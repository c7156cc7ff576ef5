// Typed runbook params: what a runbook declares, and how `-e key=value` strings become typed values.
// Every -e is checked before anything runs; all problems are reported at once.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace engine::params {

using json = nlohmann::json;

// amount: a count or a percentage ("3", "10%", at most 100%), kept as the string given: what
// fleet.each's at_once and max_failures take, checked before the run instead of when the rollout
// reaches it (after the control plane was upgraded).
// time: a time of day, "HH:MM" or "HH:MM:SS" (00:00 to 23:59:59), kept as given: a timer's
// OnCalendar. Checked with the other -e, where a bad one was refused only when the run reached its
// timer, after the work it does first (cert-renew had renewed every node's certificates).
// output: a file this machine writes (cert-renew's admin_conf), kept as given: its directory must
// exist and be writable, and the path must not be a directory. Checked when given with -e, where a
// missing directory was found only by the write, at the end of the run's work.
enum class Type { string, integer, number, boolean, enumeration, list, duration, amount, time, output };

// "03:00", "3:00:30" → true; "25:00", "03:60", "3", "03:00:" → false.
bool is_time_of_day(const std::string& text);

struct Spec {
  std::string name;
  Type type = Type::string;
  bool required = false;
  std::optional<json> default_value;  // already typed (a duration is seconds)
  std::string pattern;                // a Lua pattern; checked through PatternCheck
  std::string help;
  bool secret = false;
  std::vector<std::string> values;  // enum choices
  // integer, number, duration (seconds): the range a value must fall in, both ends included. A
  // ratio of 1.5 or a negative count otherwise passes -e and fails the run late, or never.
  std::optional<double> min, max;
};

// "from 0 to 1", "at least 1", "at most 100" ("" without a range); a duration's ends as durations.
std::string range_text(const Spec& spec);

// Lua patterns are matched by the Lua layer; the engine only asks.
using PatternCheck = std::function<bool(const std::string& value, const std::string& pattern)>;

// "string", "integer", ... as runbooks write them. Throws std::invalid_argument on an unknown name.
Type parse_type(const std::string& name);
std::string type_name(Type t);

// "90s", "10m", "1h30m", "250ms", "2d" or a bare number of seconds. nullopt when malformed.
std::optional<double> parse_duration(std::string_view text);

// One -e value as the param's type. Throws ConfigError naming the param, the type and the value.
json parse_value(const Spec& spec, const std::string& text, const PatternCheck& check);

// A declared default, checked against the declared type (a duration default may be "90s").
// Throws std::invalid_argument describing the mismatch: a runbook bug, not a user error.
json normalize_default(const Spec& spec, const json& value);

// Typed values for every declared param: -e values over defaults. Unknown keys are rejected with the
// closest declared name; missing required params are named with their help. Throws ConfigError.
// With `missing`, required params nobody gave are listed there instead of being an error
// (`engine check` of a runbook alone).
json resolve(const std::vector<Spec>& specs, const std::vector<std::pair<std::string, std::string>>& given,
             const PatternCheck& check, std::vector<std::string>* missing = nullptr);

// How a value is shown in --help and plans; secrets never are.
std::string display(const Spec& spec, const json& value);

}  // namespace engine::params
