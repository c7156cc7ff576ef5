// Ansible host patterns, as --limit and inv:hosts() take them: unions (`a:b`, `a,b`), intersections
// (`&a`), exclusions (`!a`), globs, `~regex`, and subscripts (`grp[0]`, `grp[1:3]`, `grp[-1]`).
#include <algorithm>
#include <regex>
#include <set>

#include "engine/core/errors.hpp"
#include "engine/core/text.hpp"
#include "engine/inventory/inventory.hpp"

namespace engine::inventory {

namespace {

// Splits on ',' when there is one, else on ':' outside brackets (so "grp[1:3]" stays whole).
std::vector<std::string> split_terms(const std::string& pattern) {
  std::vector<std::string> raw;
  if (pattern.find(',') != std::string::npos) {
    raw = text::split(pattern, ',');
  } else {
    std::string cur;
    int depth = 0;
    for (char c : pattern) {
      if (c == '[') ++depth;
      if (c == ']') --depth;
      if (c == ':' && depth == 0) {
        raw.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    raw.push_back(cur);
  }
  std::vector<std::string> out;
  for (auto& t : raw) {
    auto s = text::trim(t);
    if (!s.empty()) out.push_back(s);
  }
  return out;
}

struct Subscript {
  long start = 0;
  std::optional<long> end;  // inclusive; nullopt: a single index
  bool open_end = false;
};

// "grp[1:3]" → ("grp", 1..3). A glob class like "node[12]" is not a subscript unless it is all digits,
// a sign or a colon, which is what Ansible decides too.
std::pair<std::string, std::optional<Subscript>> take_subscript(const std::string& term) {
  static const std::regex re(R"(^(.+)\[(-?[0-9]*)(:(-?[0-9]*))?\]$)");
  std::smatch m;
  if (term[0] == '~' || !std::regex_match(term, m, re)) return {term, std::nullopt};
  if (m[2].str().empty() && !m[3].matched) return {term, std::nullopt};
  Subscript s;
  s.start = m[2].str().empty() ? 0 : std::stol(m[2].str());
  if (m[3].matched) {
    if (m[4].str().empty()) s.open_end = true;
    else s.end = std::stol(m[4].str());
  }
  return {m[1].str(), s};
}

std::vector<std::string> apply_subscript(std::vector<std::string> hosts, const Subscript& s) {
  long n = static_cast<long>(hosts.size());
  auto norm = [n](long i) { return i < 0 ? n + i : i; };
  long a = norm(s.start);
  long b = s.open_end ? n - 1 : (s.end ? norm(*s.end) : a);
  std::vector<std::string> out;
  for (long i = std::max(0L, a); i <= b && i < n; ++i) out.push_back(hosts[i]);
  return out;
}

bool has_glob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

}  // namespace

std::vector<std::string> Inventory::match_term(const std::string& term_in) const {
  auto [term, sub] = take_subscript(term_in);
  std::vector<std::string> out;
  auto add = [&](const std::string& h) {
    if (visible(h) && std::find(out.begin(), out.end(), h) == out.end()) out.push_back(h);
  };
  if (term[0] == '~') {
    std::regex re;
    try {
      re = std::regex(term.substr(1));
    } catch (const std::regex_error& e) {
      throw ConfigError("host pattern '" + term + "': bad regular expression: " + e.what());
    }
    for (const auto& g : group_order_)
      if (std::regex_search(g, re))
        for (const auto& h : hosts_of(g)) add(h);
    for (const auto& h : host_order_)
      if (std::regex_search(h, re)) add(h);
  } else {
    bool matched_group = false;
    for (const auto& g : group_order_) {
      if (g == term || (has_glob(term) && text::glob_match(term, g))) {
        matched_group = true;
        for (const auto& h : hosts_of(g)) add(h);
      }
    }
    if (!matched_group || has_glob(term))
      for (const auto& h : host_order_)
        if (h == term || (has_glob(term) && text::glob_match(term, h))) add(h);
  }
  if (sub) out = apply_subscript(out, *sub);
  return out;
}

std::vector<std::string> Inventory::match(const std::string& pattern) const {
  auto terms = split_terms(pattern);
  if (terms.empty()) throw ConfigError("empty host pattern");
  // Unions first, then intersections, then exclusions, as Ansible evaluates them; a pattern of only
  // & and ! terms starts from all.
  std::vector<std::string> plain, inter, excl;
  for (auto& t : terms) {
    if (t[0] == '!') excl.push_back(t.substr(1));
    else if (t[0] == '&') inter.push_back(t.substr(1));
    else plain.push_back(t);
  }
  if (plain.empty()) plain.push_back("all");

  std::vector<std::string> names = group_order_;
  names.insert(names.end(), host_order_.begin(), host_order_.end());
  auto resolve = [&](const std::string& t) {
    if (t.empty()) throw ConfigError("host pattern '" + pattern + "' has an empty term");
    auto hosts = match_term(t);
    if (hosts.empty()) {
      auto [base, sub] = take_subscript(t);
      bool known = group(base) != nullptr || host(base) != nullptr;
      if (!known) throw ConfigError("no host or group matches '" + t + "'" + text::did_you_mean(base, names));
      if (sub) throw ConfigError("host pattern '" + t + "': the subscript selects no host");
      // A known but empty group, or a host outside an earlier --limit: an honest empty match.
    }
    return hosts;
  };

  std::vector<std::string> result;
  for (auto& t : plain)
    for (auto& h : resolve(t))
      if (std::find(result.begin(), result.end(), h) == result.end()) result.push_back(h);
  for (auto& t : inter) {
    auto keep = resolve(t);
    std::erase_if(result, [&](auto& h) { return std::find(keep.begin(), keep.end(), h) == keep.end(); });
  }
  for (auto& t : excl) {
    auto drop = resolve(t);
    std::erase_if(result, [&](auto& h) { return std::find(drop.begin(), drop.end(), h) != drop.end(); });
  }
  // Results follow inventory order, whatever order the terms came in.
  std::vector<std::string> ordered;
  for (const auto& h : host_order_)
    if (std::find(result.begin(), result.end(), h) != result.end()) ordered.push_back(h);
  if (plain.size() == 1 && inter.empty() && excl.empty()) return result;  // a single group keeps its own order
  return ordered;
}

std::vector<std::string> Inventory::hidden(const std::string& pattern) const {
  if (!limit_) return {};
  Inventory whole = *this;  // inventories are small; this is asked once or twice a run
  whole.limit_.reset();
  std::vector<std::string> out;
  for (auto& h : whole.match(pattern))
    if (!visible(h)) out.push_back(h);
  return out;
}

void Inventory::limit(const std::string& pattern) {
  auto hosts = match(pattern);
  limit_ = std::set<std::string>(hosts.begin(), hosts.end());
}

}  // namespace engine::inventory
