#include "engine/core/yaml_value.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

#include "engine/core/errors.hpp"

namespace engine::yaml {

namespace {

bool is_any(const std::string& s, std::initializer_list<const char*> words) {
  for (auto w : words)
    if (s == w) return true;
  return false;
}

std::optional<long long> yaml_int(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  bool neg = false;
  size_t i = 0;
  if (s[0] == '+' || s[0] == '-') neg = s[0] == '-', i = 1;
  int base = 10;
  if (s.compare(i, 2, "0x") == 0) base = 16, i += 2;
  else if (s.compare(i, 2, "0o") == 0) base = 8, i += 2;
  else if (s.compare(i, 2, "0b") == 0) base = 2, i += 2;
  else if (s.size() > i + 1 && s[i] == '0') base = 8, i += 1;  // YAML 1.1 octal, as PyYAML reads it
  if (i >= s.size()) return base == 8 ? std::optional<long long>(0) : std::nullopt;
  long long v = 0;
  auto r = std::from_chars(s.data() + i, s.data() + s.size(), v, base);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return neg ? -v : v;
}

std::optional<double> yaml_float(const std::string& s) {
  static const std::regex re(R"([-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+)");
  if (is_any(s, {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"})) return HUGE_VAL;
  if (is_any(s, {"-.inf", "-.Inf", "-.INF"})) return -HUGE_VAL;
  if (is_any(s, {".nan", ".NaN", ".NAN"})) return NAN;
  if (!std::regex_match(s, re) || s == "." ) return std::nullopt;
  std::string t = s;
  t.erase(std::remove(t.begin(), t.end(), '_'), t.end());
  return std::strtod(t.c_str(), nullptr);
}

nlohmann::json scalar(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  const std::string& tag = node.Tag();
  if (tag == "!" || tag == "tag:yaml.org,2002:str") return s;  // quoted, or explicitly a string
  if (tag == "tag:yaml.org,2002:int")
    if (auto v = yaml_int(s)) return *v;
  if (tag == "tag:yaml.org,2002:float")
    if (auto v = yaml_float(s)) return *v;
  if (s.empty() || is_any(s, {"~", "null", "Null", "NULL"})) return nullptr;
  if (is_any(s, {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"})) return true;
  if (is_any(s, {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"})) return false;
  if (auto v = yaml_int(s)) return *v;
  if (auto v = yaml_float(s)) return *v;
  return s;
}

}  // namespace

nlohmann::json to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalar(node);
    case YAML::NodeType::Sequence: {
      auto out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(to_json(item));
      return out;
    }
    case YAML::NodeType::Map: {
      auto out = nlohmann::json::object();
      for (const auto& kv : node) out[kv.first.Scalar()] = to_json(kv.second);
      return out;
    }
  }
  return nullptr;
}

namespace {

// A string is written plain only when reading it back gives the same string: "true", "1.30",
// "0755" and "" are quoted, or kubeadm would read a bool, a float, an octal or null.
bool reads_back(const std::string& s) {
  if (s.empty()) return false;
  YAML::Node n;
  try {
    n = YAML::Load(s);
  } catch (const YAML::Exception&) {
    return false;
  }
  if (!n.IsScalar() || n.Tag() == "!") return false;
  nlohmann::json back = scalar(n);
  return back.is_string() && back.get<std::string>() == s;
}

void emit(YAML::Emitter& out, const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [k, item] : v.items()) {
        out << YAML::Key;
        if (reads_back(k)) out << k; else out << YAML::DoubleQuoted << k;
        out << YAML::Value;
        emit(out, item);
      }
      out << YAML::EndMap;
      break;
    case nlohmann::json::value_t::array:
      if (v.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        break;
      }
      out << YAML::BeginSeq;
      for (const auto& item : v) emit(out, item);
      out << YAML::EndSeq;
      break;
    case nlohmann::json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      if (reads_back(s)) out << s; else out << YAML::DoubleQuoted << s;
      break;
    }
    case nlohmann::json::value_t::boolean:
      out << (v.get<bool>() ? "true" : "false");
      break;
    case nlohmann::json::value_t::null:
      out << YAML::Null;
      break;
    default:
      out << v.dump();  // numbers as JSON writes them, which YAML reads back the same
  }
}

}  // namespace

std::string dump(const nlohmann::json& value) {
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetSeqFormat(YAML::Block);
  emit(out, value);
  std::string s = out.c_str();
  if (s.empty() || s.back() != '\n') s += '\n';
  return s;
}

YAML::Node load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read: " + std::strerror(errno));
  try {
    return YAML::Load(in);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(at(path, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

std::string where(const std::string& file, const YAML::Node& node) {
  auto m = node.Mark();
  if (m.is_null()) return file;
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

}  // namespace engine::yaml
