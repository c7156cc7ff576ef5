#include "engine/params/params.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <stdexcept>

#include <unistd.h>

#include "engine/core/errors.hpp"
#include "engine/core/text.hpp"
#include "engine/fleet/window.hpp"

namespace engine::params {

namespace {

struct TypeName {
  Type type;
  const char* name;
};
constexpr TypeName kTypes[] = {{Type::string, "string"},   {Type::integer, "integer"}, {Type::number, "number"},
                               {Type::boolean, "boolean"}, {Type::enumeration, "enum"}, {Type::list, "list"},
                               {Type::duration, "duration"}, {Type::amount, "amount"}, {Type::time, "time"},
                               {Type::output, "output"}};

using text::lower;

std::optional<long long> parse_integer(const std::string& s) {
  long long v = 0;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (b != e && *b == '+') ++b;
  auto r = std::from_chars(b, e, v);
  if (b == e || r.ec != std::errc() || r.ptr != e) return std::nullopt;
  return v;
}

std::optional<double> parse_number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<bool> parse_boolean(const std::string& s) {
  auto l = lower(s);
  if (l == "true" || l == "yes" || l == "on" || l == "1") return true;
  if (l == "false" || l == "no" || l == "off" || l == "0") return false;
  return std::nullopt;
}

[[noreturn]] void bad(const Spec& spec, const std::string& expected, const std::string& given) {
  std::string shown = spec.secret ? "<secret>" : "'" + given + "'";
  throw ConfigError("param '" + spec.name + "' expects " + expected + ", got " + shown);
}

void check_pattern(const Spec& spec, const std::string& v, const PatternCheck& check) {
  if (!spec.pattern.empty() && check && !check(v, spec.pattern)) {
    std::string shown = spec.secret ? "<secret>" : "'" + v + "'";
    // The help (with its example) first: a Lua pattern is the runbook author's language, not the operator's.
    throw ConfigError("param '" + spec.name + "': " + shown + " is refused: " +
                      (spec.help.empty() ? "it must match the Lua pattern " + spec.pattern
                                         : spec.help + " (it must match the Lua pattern " + spec.pattern + ")"));
  }
}

std::string number_text(const Spec& spec, double v) {
  if (spec.type == Type::duration) return display(spec, json(v));
  if (v == std::floor(v) && std::abs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  return json(v).dump();
}

bool in_range(const Spec& spec, double v) {
  return !(spec.min && v < *spec.min) && !(spec.max && v > *spec.max);
}

// A value of the right type outside the declared range: named with the range and the help.
json ranged(const Spec& spec, const json& v, const std::string& given) {
  if (in_range(spec, v.get<double>())) return v;
  std::string shown = spec.secret ? "<secret>" : "'" + given + "'";
  throw ConfigError("param '" + spec.name + "': " + shown + " is refused: it must be " + range_text(spec) +
                    (spec.help.empty() ? "" : " (" + spec.help + ")"));
}

std::string join_values(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

std::string range_text(const Spec& spec) {
  if (spec.min && spec.max) return "from " + number_text(spec, *spec.min) + " to " + number_text(spec, *spec.max);
  if (spec.min) return "at least " + number_text(spec, *spec.min);
  if (spec.max) return "at most " + number_text(spec, *spec.max);
  return "";
}

Type parse_type(const std::string& name) {
  for (const auto& t : kTypes)
    if (name == t.name) return t.type;
  std::vector<std::string> names;
  for (const auto& t : kTypes) names.emplace_back(t.name);
  throw std::invalid_argument("unknown param type '" + name + "'" + text::did_you_mean(name, names) +
                              "; types: " + join_values(names));
}

std::string type_name(Type t) {
  for (const auto& x : kTypes)
    if (x.type == t) return x.name;
  return "?";
}

std::optional<double> parse_duration(std::string_view text) {
  std::string s = text::trim(text);
  if (s.empty()) return std::nullopt;
  if (auto n = parse_number(s)) return *n >= 0 ? std::optional<double>(*n) : std::nullopt;
  double total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (start == i) return std::nullopt;
    auto n = parse_number(s.substr(start, i - start));
    if (!n) return std::nullopt;
    size_t us = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    std::string unit = s.substr(us, i - us);
    double mult;
    if (unit == "ms") mult = 0.001;
    else if (unit == "s") mult = 1;
    else if (unit == "m") mult = 60;
    else if (unit == "h") mult = 3600;
    else if (unit == "d") mult = 86400;
    else return std::nullopt;
    total += *n * mult;
  }
  return total;
}

bool is_time_of_day(const std::string& text) {
  // H or HH, then MM, then optionally SS: each field's digits exactly, within its range.
  auto parts = text::split(text, ':');
  if (parts.size() < 2 || parts.size() > 3) return false;
  const int limits[] = {23, 59, 59};
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& f = parts[i];
    if (f.empty() || f.size() > 2 || (i > 0 && f.size() != 2)) return false;
    if (!std::all_of(f.begin(), f.end(), [](unsigned char c) { return std::isdigit(c); })) return false;
    if (std::stoi(f) > limits[i]) return false;
  }
  return true;
}

json parse_value(const Spec& spec, const std::string& text, const PatternCheck& check) {
  switch (spec.type) {
    case Type::string:
      check_pattern(spec, text, check);
      return text;
    case Type::integer:
      if (auto v = parse_integer(text)) return ranged(spec, *v, text);
      bad(spec, "an integer", text);
    case Type::number:
      if (auto v = parse_number(text)) return ranged(spec, *v, text);
      bad(spec, "a number", text);
    case Type::boolean:
      if (auto v = parse_boolean(text)) return *v;
      bad(spec, "a boolean (true/false, yes/no)", text);
    case Type::enumeration:
      if (std::find(spec.values.begin(), spec.values.end(), text) != spec.values.end()) return text;
      bad(spec, "one of " + join_values(spec.values) + text::did_you_mean(text, spec.values), text);
    case Type::duration:
      if (auto v = parse_duration(text)) return ranged(spec, *v, text);
      bad(spec, "a duration such as 90s, 10m, 1h30m or a number of seconds", text);
    case Type::amount: {
      std::string t = text::trim(text);
      if (!fleet::parse_amount(t)) bad(spec, "a count such as 3 or a percentage such as 10% (at most 100%)", text);
      check_pattern(spec, t, check);
      return t;
    }
    case Type::time: {
      std::string t = text::trim(text);
      if (!is_time_of_day(t)) bad(spec, "a time of day, HH:MM or HH:MM:SS (00:00 to 23:59:59)", text);
      check_pattern(spec, t, check);
      return t;
    }
    case Type::output: {
      std::string t = text::trim(text);
      if (t.empty()) bad(spec, "a file this machine writes", text);
      std::error_code ec;
      std::filesystem::path path(t);
      std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
      std::string why;
      if (std::filesystem::is_directory(path, ec)) why = "it is a directory";
      else if (!std::filesystem::is_directory(dir, ec)) why = "its directory " + dir.string() + " does not exist";
      else if (::access(dir.c_str(), W_OK) != 0) why = "its directory " + dir.string() + " is not writable";
      if (!why.empty()) bad(spec, "a file this machine can write (" + why + ")", text);
      check_pattern(spec, t, check);
      return t;
    }
    case Type::list: {
      json out = json::array();
      std::string t = text::trim(text);
      // A list with values: each item one of them (cert-renew's certs), said with the closest.
      auto allowed = [&](const std::string& item) {
        if (spec.values.empty() || std::find(spec.values.begin(), spec.values.end(), item) != spec.values.end()) return;
        bad(spec, "a list of " + join_values(spec.values) + ": '" + item + "' is none of them" +
                      text::did_you_mean(item, spec.values), text);
      };
      if (!t.empty() && t.front() == '[') {
        json parsed = json::parse(t, nullptr, false);
        if (parsed.is_discarded() || !parsed.is_array()) bad(spec, "a list (a,b,c or a JSON array)", text);
        for (auto& item : parsed) {
          if (!item.is_string()) bad(spec, "a list of strings", text);
          check_pattern(spec, item.get<std::string>(), check);
          allowed(item.get<std::string>());
          out.push_back(item);
        }
        return out;
      }
      for (auto& item : text::split(t, ',')) {
        auto v = text::trim(item);
        if (v.empty()) continue;
        check_pattern(spec, v, check);
        allowed(v);
        out.push_back(v);
      }
      return out;
    }
  }
  return text;
}

namespace {

json normalize_type(const Spec& spec, const json& v) {
  auto mismatch = [&](const std::string& expected) {
    return std::invalid_argument("param '" + spec.name + "': default " + v.dump() + " is not " + expected);
  };
  switch (spec.type) {
    case Type::string:
      if (!v.is_string()) throw mismatch("a string");
      return v;
    case Type::integer:
      if (!v.is_number_integer()) throw mismatch("an integer");
      return v;
    case Type::number:
      if (!v.is_number()) throw mismatch("a number");
      return v;
    case Type::boolean:
      if (!v.is_boolean()) throw mismatch("a boolean");
      return v;
    case Type::enumeration:
      if (!v.is_string() || std::find(spec.values.begin(), spec.values.end(), v.get<std::string>()) == spec.values.end())
        throw mismatch("one of " + join_values(spec.values));
      return v;
    case Type::duration:
      if (v.is_number() && v.get<double>() >= 0) return v;
      if (v.is_string())
        if (auto d = parse_duration(v.get<std::string>())) return *d;
      throw mismatch("a duration");
    case Type::amount:
      if (v.is_number_integer() && v.get<long long>() >= 0) return std::to_string(v.get<long long>());
      if (v.is_string() && fleet::parse_amount(v.get<std::string>())) return v;
      throw mismatch("a count or a percentage up to 100%");
    case Type::time:
      if (v.is_string() && is_time_of_day(v.get<std::string>())) return v;
      throw mismatch("a time of day, HH:MM or HH:MM:SS");
    case Type::output:
      if (!v.is_string()) throw mismatch("a path");
      return v;
    case Type::list:
      if (v.is_object() && v.empty()) return json::array();  // Lua's {} has no array/object distinction
      if (!v.is_array()) throw mismatch("a list");
      for (auto& item : v) {
        if (!item.is_string()) throw mismatch("a list of strings");
        if (!spec.values.empty() && std::find(spec.values.begin(), spec.values.end(), item.get<std::string>()) == spec.values.end())
          throw mismatch("a list of " + join_values(spec.values));
      }
      return v;
  }
  return v;
}

}  // namespace

json normalize_default(const Spec& spec, const json& value) {
  json v = normalize_type(spec, value);
  if ((spec.min || spec.max) && v.is_number() && !in_range(spec, v.get<double>()))
    throw std::invalid_argument("param '" + spec.name + "': default " + value.dump() + " is not " + range_text(spec));
  return v;
}

json resolve(const std::vector<Spec>& specs, const std::vector<std::pair<std::string, std::string>>& given,
             const PatternCheck& check, std::vector<std::string>* missing) {
  std::vector<std::string> problems;
  std::vector<std::string> names;
  for (const auto& s : specs) names.push_back(s.name);

  json out = json::object();
  std::vector<std::string> invalid;  // given but not valid: reported once, not also as missing
  for (const auto& [key, value] : given) {
    auto it = std::find_if(specs.begin(), specs.end(), [&](const Spec& s) { return s.name == key; });
    if (it == specs.end()) {
      problems.push_back("unknown param '" + key + "'" + text::did_you_mean(key, names) +
                         (names.empty() ? "; this runbook takes no params" : ""));
      continue;
    }
    try {
      out[key] = parse_value(*it, value, check);
    } catch (const ConfigError& e) {
      problems.emplace_back(e.what());
      invalid.push_back(key);
    }
  }
  for (const auto& s : specs) {
    if (out.contains(s.name) || std::find(invalid.begin(), invalid.end(), s.name) != invalid.end()) continue;
    if (s.default_value) {
      out[s.name] = *s.default_value;
    } else if (s.required && missing) {
      missing->push_back(s.name);
    } else if (s.required) {
      problems.push_back("missing required param '" + s.name + "' (" + type_name(s.type) + ")" +
                         (s.help.empty() ? "" : ": " + s.help) + "; give it with -e " + s.name + "=...");
    }
  }
  if (!problems.empty()) {
    std::string msg;
    for (const auto& p : problems) msg += (msg.empty() ? "" : "\n") + p;
    throw ConfigError(msg);
  }
  return out;
}

std::string display(const Spec& spec, const json& value) {
  if (spec.secret) return "<secret>";
  if (spec.type == Type::duration && value.is_number()) {
    double s = value.get<double>();
    if (s == std::floor(s)) return std::to_string(static_cast<long long>(s)) + "s";
    double ms = s * 1000;
    if (ms == std::floor(ms)) return std::to_string(static_cast<long long>(ms)) + "ms";
  }
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array()) {
    std::string out;
    for (auto& v : value) {  // appended piece by piece: GCC 12's -Wrestrict misfires on `"" + string`
      if (!out.empty()) out += ',';
      out += v.is_string() ? v.get<std::string>() : v.dump();
    }
    return out;
  }
  return value.dump();
}

}  // namespace engine::params
