// INI inventories as Ansible's ini plugin reads them: [group], [group:vars], [group:children],
// host lines split like shlex (quotes, `#` comments), values read as Python literals where they are one.
#include <cctype>
#include <fstream>
#include <map>
#include <cstring>
#include <optional>

#include "engine/core/errors.hpp"
#include "engine/core/text.hpp"
#include "engine/inventory/inventory.hpp"

namespace engine::inventory {

namespace {

// shlex.split(line, comments=True), as Ansible splits host lines; errors carry file:line:column.
std::vector<text::Word> shlex(const std::string& line, const std::string& path, int lineno) {
  try {
    return text::shell_words(line, true);
  } catch (const text::BadQuote& q) {
    throw ConfigError(at(path, lineno, q.column, std::string("unterminated ") + q.quote + " quote"));
  }
}

// Ansible passes values through ast.literal_eval; what is not a literal stays the string.
json literal(const std::string& v) {
  if (auto parsed = python_literal(v)) return *parsed;
  return v;
}

// A group's name in a section or a :children line: up to a colon, a bracket or a space.
size_t name_end(const std::string& line, size_t i) {
  while (i < line.size() && line[i] != ':' && line[i] != ']' && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
  return i;
}

// What may follow a section or a name: spaces, then the end or a comment opened by one of `marks`.
bool rest_is_comment(const std::string& line, size_t i, const char* marks) {
  while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
  return i == line.size() || std::strchr(marks, line[i]) != nullptr;
}

// "[group]" or "[group:type]" (type a word), then an optional comment: the group and the type
// ("" if none), or nothing. By hand, as the group name below: std::regex cost ~0.2 ms to compile.
std::optional<std::pair<std::string, std::string>> section(const std::string& line) {
  size_t end = name_end(line, 1);
  if (end == 1) return std::nullopt;
  std::string group = line.substr(1, end - 1), type;
  size_t i = end;
  if (i < line.size() && line[i] == ':') {
    size_t t = ++i;
    while (i < line.size() && (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_')) ++i;
    if (i == t) return std::nullopt;
    type = line.substr(t, i - t);
  }
  if (i >= line.size() || line[i] != ']' || !rest_is_comment(line, i + 1, "#;")) return std::nullopt;
  return std::make_pair(group, type);
}

struct Pending {
  int line;
  std::string kind;  // "vars" or "children"
  std::string group;
};

}  // namespace

void load_ini(Inventory& inv, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read: " + std::strerror(errno));

  std::string group = "ungrouped", state = "hosts";
  std::map<std::string, Pending> pending;  // groups named in :vars/:children but never defined
  std::string raw;
  int lineno = 0;
  while (std::getline(in, raw)) {
    ++lineno;
    std::string line = text::trim(raw);
    if (line.empty() || line[0] == ';' || line[0] == '#') continue;
    int indent = static_cast<int>(raw.find(line[0]));

    if (line[0] == '[') {
      auto m = section(line);
      if (!m)
        throw ConfigError(at(path, lineno, indent + 1,
                             "invalid section '" + line + "': no spaces, and [group], [group:vars] or [group:children]"));
      group = m->first;
      state = m->second.empty() ? "hosts" : m->second;
      if (state != "hosts" && state != "vars" && state != "children")
        throw ConfigError(at(path, lineno, indent + 1 + static_cast<int>(group.size()) + 2,
                             "section [" + group + ":" + state + "] has unknown type '" + state +
                                 "'; use :vars or :children"));
      if (state == "hosts" || state == "children") pending.erase(group);
      else if (!inv.group(group)) pending.try_emplace(group, Pending{lineno, state, group});
      inv.add_group(group);
      continue;
    }

    if (state == "hosts") {
      auto tokens = shlex(raw, path, lineno);
      if (tokens.empty()) continue;
      std::vector<std::string> names;
      std::optional<int> port;
      try {
        auto [pattern, p] = split_port(tokens[0].text);
        port = p;
        names = expand_host_range(pattern);
      } catch (const std::invalid_argument& e) {
        throw ConfigError(at(path, lineno, tokens[0].column, e.what()));
      }
      json vars = json::object();
      if (port) vars["ansible_port"] = *port;
      for (size_t i = 1; i < tokens.size(); ++i) {
        auto eq = tokens[i].text.find('=');
        if (eq == std::string::npos || eq == 0)
          throw ConfigError(at(path, lineno, tokens[i].column,
                               "expected key=value host variable, got '" + tokens[i].text + "'"));
        vars[tokens[i].text.substr(0, eq)] = literal(tokens[i].text.substr(eq + 1));
      }
      for (const auto& n : names) {
        inv.add_host_to_group(group, n);
        auto& h = *inv.mutable_host(n);
        for (auto it = vars.begin(); it != vars.end(); ++it) h.vars[it.key()] = it.value();
      }
    } else if (state == "vars") {
      auto eq = line.find('=');
      if (eq == std::string::npos)
        throw ConfigError(at(path, lineno, indent + 1, "expected key=value in [" + group + ":vars], got '" + line + "'"));
      inv.mutable_group(group)->vars[text::trim(line.substr(0, eq))] = literal(text::trim(line.substr(eq + 1)));
    } else {
      size_t end = name_end(line, 0);
      if (end == 0 || !rest_is_comment(line, end, "#"))
        throw ConfigError(at(path, lineno, indent + 1, "expected a group name in [" + group + ":children], got '" + line + "'"));
      std::string child = line.substr(0, end);
      if (!inv.group(child)) pending.try_emplace(child, Pending{lineno, "children", group});
      try {
        inv.add_child(group, child);
      } catch (const std::invalid_argument& e) {
        throw ConfigError(at(path, lineno, indent + 1, e.what()));
      }
    }
  }
  for (const auto& [name, p] : pending) {
    auto* g = inv.group(name);
    // A group filled in by another source (or by group_vars) is fine; only a never-defined one is a typo.
    if (g && (!g->hosts.empty() || !g->children.empty())) continue;
    std::vector<std::string> others;
    for (const auto& n : inv.group_names())
      if (n != name) others.push_back(n);
    if (p.kind == "vars")
      throw ConfigError(at(path, p.line, 1, "section [" + name + ":vars] is for a group that is never defined"));
    throw ConfigError(at(path, p.line, 1, "[" + p.group + ":children] names group '" + name +
                                              "', which is never defined" +
                                              text::did_you_mean(name, others)));
  }
}

}  // namespace engine::inventory
