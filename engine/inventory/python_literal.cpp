// Python literals, as ast.literal_eval reads them: Ansible passes every INI value through it, so
// `json='{"a": 1}'` is a dict, `lst="[1,2]"` a list, `n=010` a string (a SyntaxError in Python 3).
#include <cmath>
#include <cctype>

#include "engine/inventory/inventory.hpp"

namespace engine::inventory {

namespace {

struct Fail {};  // not a literal: the value stays the string it was

// Python's number tokens, matched by hand: std::regex took ~0.35 ms to compile these two patterns,
// a cost every `engine run` with an INI inventory paid before its first host.
bool dec(char c) { return c >= '0' && c <= '9'; }
bool hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
bool oct(char c) { return c >= '0' && c <= '7'; }
bool bin(char c) { return c == '0' || c == '1'; }
bool zero(char c) { return c == '0'; }

// D(_?D)* from i: digits with single underscores between them. The end, or npos if none is there.
size_t digits(std::string_view s, size_t i, bool (*is)(char)) {
  if (i >= s.size() || !is(s[i])) return std::string_view::npos;
  ++i;
  while (i < s.size()) {
    if (is(s[i])) {
      ++i;
    } else if (s[i] == '_' && i + 1 < s.size() && is(s[i + 1])) {
      i += 2;
    } else {
      break;
    }
  }
  return i;
}

// 0x(_?H)+ | 0o(_?O)+ | 0b(_?B)+ | [1-9](_?D)* | 0+(_?0)*
bool python_int(std::string_view s) {
  if (s.size() > 2 && s[0] == '0' && std::isalpha(static_cast<unsigned char>(s[1]))) {
    char b = static_cast<char>(std::tolower(static_cast<unsigned char>(s[1])));
    bool (*is)(char) = b == 'x' ? hex : b == 'o' ? oct : b == 'b' ? bin : nullptr;
    if (!is) return false;
    size_t i = s[2] == '_' ? 3 : 2;
    return digits(s, i, is) == s.size();
  }
  if (s.empty()) return false;
  return digits(s, 0, s[0] == '0' ? zero : dec) == s.size();
}

// Where a number token that starts at `start` ends: letters, digits, '_' and '.', and a sign
// after an exponent's e (not in a hex number).
size_t number_end(std::string_view s, size_t start) {
  size_t i = start;
  auto at = [&](size_t k) { return k < s.size() ? s[k] : '\0'; };
  while (std::isalnum(static_cast<unsigned char>(at(i))) || at(i) == '_' || at(i) == '.' ||
         ((at(i) == '+' || at(i) == '-') && (at(i - 1) == 'e' || at(i - 1) == 'E') &&
          !(at(start) == '0' && (at(start + 1) == 'x' || at(start + 1) == 'X'))))
    ++i;
  return i;
}

// digitpart? "." digitpart | digitpart "." | each of those or a digitpart, then an exponent
bool python_float(std::string_view s) {
  constexpr size_t none = std::string_view::npos;
  size_t whole = digits(s, 0, dec);
  size_t i = whole == none ? 0 : whole;
  bool point = false;
  if (i < s.size() && s[i] == '.') {
    size_t frac = digits(s, i + 1, dec);
    if (whole == none && frac == none) return false;
    i = frac == none ? i + 1 : frac;
    point = true;
  } else if (whole == none) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t at = i + 1;
    if (at < s.size() && (s[at] == '+' || s[at] == '-')) ++at;
    i = digits(s, at, dec);
    if (i == none) return false;
  } else if (!point) {
    return false;
  }
  return i == s.size();
}

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  json top() {
    skip();
    json first = expr();
    skip();
    if (peek() == ',') {  // "1, 2" is a tuple
      json t = json::array({first});
      while (eat(',')) {
        skip();
        if (at_end()) break;
        t.push_back(expr());
        skip();
      }
      first = t;
    }
    skip();
    if (!at_end()) throw Fail{};
    return first;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;

  bool at_end() const { return i_ >= s_.size(); }
  char peek(size_t ahead = 0) const { return i_ + ahead < s_.size() ? s_[i_ + ahead] : '\0'; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  void skip() {  // whitespace and comments, as the tokenizer drops them
    while (!at_end()) {
      char c = peek();
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || (c == '\\' && peek(1) == '\n')) {
        i_ += c == '\\' ? 2 : 1;
      } else if (c == '#') {
        while (!at_end() && peek() != '\n') ++i_;
      } else {
        break;
      }
    }
  }

  json expr() {
    skip();
    char c = peek();
    if (c == '-' || c == '+') {  // only on numbers
      ++i_;
      json v = expr();
      if (!v.is_number() || v.is_boolean()) throw Fail{};
      if (c == '+') return v;
      if (v.is_number_float()) return -v.get<double>();
      if (v.is_number_unsigned()) throw Fail{};
      return -v.get<long long>();
    }
    if (c == '[') return sequence('[', ']');
    if (c == '(') return sequence('(', ')');
    if (c == '{') return brace();
    if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && std::isdigit(static_cast<unsigned char>(peek(1)))))
      return number();
    if (c == '"' || c == '\'') return strings("");
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t start = i_;
      while (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '_') ++i_;
      std::string word(s_.substr(start, i_ - start));
      if (word == "True") return true;
      if (word == "False") return false;
      if (word == "None") return nullptr;
      std::string p;
      for (char ch : word) p += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if ((peek() == '"' || peek() == '\'') && (p == "r" || p == "b" || p == "u" || p == "rb" || p == "br"))
        return strings(p);
      throw Fail{};  // a name, a call, an f-string: not a literal
    }
    throw Fail{};
  }

  json sequence(char open, char close) {
    eat(open);
    json out = json::array();
    skip();
    if (eat(close)) return out;
    for (;;) {
      out.push_back(expr());
      skip();
      if (eat(close)) break;
      if (!eat(',')) throw Fail{};
      skip();
      if (eat(close)) break;
    }
    // "(1)" is 1, not a tuple.
    if (open == '(' && out.size() == 1 && s_[i_ - 2] != ',') {
      size_t j = i_ - 2;
      while (j > 0 && (s_[j] == ' ' || s_[j] == '\t' || s_[j] == '\n')) --j;
      if (s_[j] != ',') return out[0];
    }
    return out;
  }

  static std::string key_text(const json& k) {
    if (k.is_string()) return k.get<std::string>();
    if (k.is_array() || k.is_object()) throw Fail{};  // unhashable, or not JSON-keyable
    return k.dump();
  }

  json brace() {  // a dict, or a set (a list once it is JSON)
    eat('{');
    skip();
    json out = json::object();
    if (eat('}')) return out;
    json first = expr();
    skip();
    if (!eat(':')) {
      json set = json::array({first});
      for (;;) {
        if (eat('}')) return set;
        if (!eat(',')) throw Fail{};
        skip();
        if (eat('}')) return set;
        set.push_back(expr());
        skip();
      }
    }
    out[key_text(first)] = expr();
    for (;;) {
      skip();
      if (eat('}')) return out;
      if (!eat(',')) throw Fail{};
      skip();
      if (eat('}')) return out;
      json k = expr();
      skip();
      if (!eat(':')) throw Fail{};
      out[key_text(k)] = expr();
    }
  }

  json number() {
    size_t start = i_;
    i_ = number_end(s_, start);
    std::string tok(s_.substr(start, i_ - start));
    std::string clean;
    for (char c : tok)
      if (c != '_') clean += c;
    if (python_int(tok)) {
      int base = 10;
      std::string digits = clean;
      if (clean.size() > 1 && clean[0] == '0' && std::isalpha(static_cast<unsigned char>(clean[1]))) {
        char b = static_cast<char>(std::tolower(static_cast<unsigned char>(clean[1])));
        base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
        digits = clean.substr(2);
      }
      try {
        size_t used = 0;
        long long v = std::stoll(digits, &used, base);
        return v;
      } catch (...) {
        throw Fail{};  // beyond 64 bits: kept as the string
      }
    }
    if (python_float(tok)) return std::stod(clean);
    throw Fail{};  // 010, 1j, 1.2.3
  }

  static void utf8(std::string& out, unsigned long cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x110000) {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      throw Fail{};
    }
  }

  unsigned long hex(size_t n) {
    if (i_ + n > s_.size()) throw Fail{};
    std::string h(s_.substr(i_, n));
    for (char c : h)
      if (!std::isxdigit(static_cast<unsigned char>(c))) throw Fail{};
    i_ += n;
    return std::stoul(h, nullptr, 16);
  }

  // One or more adjacent string literals ('a' "b" is "ab"); prefix: r, b, u, rb, br.
  json strings(std::string prefix) {
    std::string out;
    for (;;) {
      bool raw = prefix.find('r') != std::string::npos;
      char q = peek();
      bool triple = peek(1) == q && peek(2) == q;
      i_ += triple ? 3 : 1;
      for (;;) {
        if (at_end()) throw Fail{};
        char c = peek();
        if (c == q && (!triple || (peek(1) == q && peek(2) == q))) {
          i_ += triple ? 3 : 1;
          break;
        }
        if (c == '\n' && !triple) throw Fail{};
        ++i_;
        if (c != '\\') {
          out += c;
          continue;
        }
        char e = peek();
        if (raw) {
          out += '\\';
          if (!at_end()) out += e, ++i_;
          continue;
        }
        ++i_;
        switch (e) {
          case '\n': break;
          case '\\': out += '\\'; break;
          case '\'': out += '\''; break;
          case '"': out += '"'; break;
          case 'a': out += '\a'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'v': out += '\v'; break;
          case 'x': utf8(out, hex(2)); break;
          case 'u': utf8(out, hex(4)); break;
          case 'U': utf8(out, hex(8)); break;
          default:
            if (e >= '0' && e <= '7') {
              unsigned long v = static_cast<unsigned long>(e - '0');
              for (int k = 0; k < 2 && peek() >= '0' && peek() <= '7'; ++k) v = v * 8 + static_cast<unsigned long>(peek() - '0'), ++i_;
              utf8(out, v);
            } else {
              out += '\\';  // unknown escapes keep their backslash, as Python does
              out += e;
            }
        }
      }
      size_t save = i_;
      skip();
      char c = peek();
      if (c == '"' || c == '\'') {
        prefix.clear();
        continue;
      }
      size_t j = i_;
      std::string p;
      while (j < s_.size() && std::isalpha(static_cast<unsigned char>(s_[j]))) p += static_cast<char>(std::tolower(static_cast<unsigned char>(s_[j++])));
      if (!p.empty() && j < s_.size() && (s_[j] == '"' || s_[j] == '\'') && (p == "r" || p == "u" || p == "b" || p == "rb" || p == "br")) {
        i_ = j;
        prefix = p;
        continue;
      }
      i_ = save;
      return out;
    }
  }
};

// Most INI values are plainly strings: a host name, an address, a user. Said here without the
// parser, which says it by throwing, a C++ exception at several us each: two per host in an
// inventory whose hosts set ansible_host and ansible_user, 2 ms of a 200-host fan-out.
// Only the two common openings are judged; anything else goes to the parser.
bool plainly_a_string(std::string_view s) {
  auto c = static_cast<unsigned char>(s[0]);
  if (std::isalpha(c) || c == '_') {
    size_t i = 0;
    while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
    std::string_view word = s.substr(0, i);
    if (word == "True" || word == "False" || word == "None") return false;
    return !(word.size() <= 2 && i < s.size() && (s[i] == '"' || s[i] == '\''));  // b"..", rb'..'
  }
  if (std::isdigit(c) || c == '.') {
    std::string_view token = s.substr(0, number_end(s, 0));
    return !python_int(token) && !python_float(token);
  }
  return false;
}

}  // namespace

std::optional<json> python_literal(std::string_view text) {
  // literal_eval strips leading spaces and tabs (Python 3.10+); everything else is the parser's.
  size_t start = text.find_first_not_of(" \t");
  if (start == std::string_view::npos || plainly_a_string(text.substr(start))) return std::nullopt;
  try {
    return Parser(text.substr(start)).top();
  } catch (const Fail&) {
    return std::nullopt;
  }
}

}  // namespace engine::inventory
