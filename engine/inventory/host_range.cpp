// Ansible's host ranges ("node[01:10]", "db-[a:c]", "n[0:20:5]") and "name:port" host names.
#include <cctype>
#include <stdexcept>

#include "engine/inventory/inventory.hpp"

namespace engine::inventory {

std::vector<std::string> expand_host_range(const std::string& pattern) {
  auto open = pattern.find('[');
  if (open == std::string::npos) return {pattern};
  auto close = pattern.find(']', open);
  if (close == std::string::npos) throw std::invalid_argument("host range '" + pattern + "' has no closing ']'");
  std::string head = pattern.substr(0, open), body = pattern.substr(open + 1, close - open - 1),
              tail = pattern.substr(close + 1);
  auto c1 = body.find(':');
  if (c1 == std::string::npos)
    throw std::invalid_argument("host range '" + pattern + "' needs [start:end]");
  auto c2 = body.find(':', c1 + 1);
  std::string beg = body.substr(0, c1);
  std::string end = body.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
  long step = 1;
  if (c2 != std::string::npos) {
    try {
      step = std::stol(body.substr(c2 + 1));
    } catch (...) {
      throw std::invalid_argument("host range '" + pattern + "': bad step");
    }
    if (step <= 0) throw std::invalid_argument("host range '" + pattern + "': step must be positive");
  }
  std::vector<std::string> items;
  bool alpha = beg.size() == 1 && end.size() == 1 && std::isalpha(static_cast<unsigned char>(beg[0])) &&
               std::isalpha(static_cast<unsigned char>(end[0]));
  if (alpha) {
    if (beg[0] > end[0]) throw std::invalid_argument("host range '" + pattern + "': start is after end");
    for (char c = beg[0]; c <= end[0]; c = static_cast<char>(c + step)) items.emplace_back(1, c);
  } else {
    long a, b;
    try {
      size_t pa = 0, pb = 0;
      a = beg.empty() ? 0 : std::stol(beg, &pa);
      b = std::stol(end, &pb);
      if ((!beg.empty() && pa != beg.size()) || pb != end.size()) throw std::invalid_argument("");
    } catch (...) {
      throw std::invalid_argument("host range '" + pattern + "': '" + body + "' is not a numeric or letter range");
    }
    if (a > b) throw std::invalid_argument("host range '" + pattern + "': start is after end");
    // "[01:10]" keeps the zero padding of the start.
    size_t width = (beg.size() > 1 && beg[0] == '0') ? beg.size() : 0;
    for (long i = a; i <= b; i += step) {
      std::string n = std::to_string(i);
      if (n.size() < width) n.insert(0, width - n.size(), '0');
      items.push_back(n);
    }
  }
  std::vector<std::string> out;
  for (const auto& item : items)
    for (const auto& rest : expand_host_range(tail)) out.push_back(head + item + rest);
  return out;
}

std::pair<std::string, std::optional<int>> split_port(const std::string& name) {
  // The port follows the last ']' of a range ("node[1:3]:2222"); two colons outside a range mean an
  // IPv6 address, which carries no port in this form.
  auto rb = name.rfind(']');
  size_t from = rb == std::string::npos ? 0 : rb + 1;
  auto c = name.find(':', from);
  if (c == std::string::npos || name.find(':', c + 1) != std::string::npos) return {name, std::nullopt};
  if (rb == std::string::npos && name.find(':') != c) return {name, std::nullopt};
  std::string port = name.substr(c + 1);
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos) return {name, std::nullopt};
  return {name.substr(0, c), std::stoi(port)};
}

}  // namespace engine::inventory
