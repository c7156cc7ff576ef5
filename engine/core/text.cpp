#include "engine/core/text.hpp"

#include <algorithm>
#include <cctype>

namespace engine::text {

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  // A third of the longer word, at least 2: catches typos and swapped letters, not unrelated names.
  size_t limit = std::max<size_t>(2, std::max(word.size(), best.size()) / 3);
  return best_d <= limit ? best : std::string();
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  auto c = closest(word, candidates);
  return c.empty() ? std::string() : " (did you mean '" + c + "'?)";
}

std::vector<Word> shell_words(std::string_view line, bool comments) {
  std::vector<Word> out;
  size_t i = 0;
  auto space = [&](size_t k) { return std::isspace(static_cast<unsigned char>(line[k])); };
  while (i < line.size()) {
    while (i < line.size() && space(i)) ++i;
    if (i >= line.size() || (comments && line[i] == '#')) break;
    Word w{"", static_cast<int>(i) + 1};
    bool ended_by_comment = false;
    while (i < line.size() && !space(i)) {
      char c = line[i];
      if (comments && c == '#') {
        ended_by_comment = true;
        break;
      }
      if (c == '\'' || c == '"') {
        size_t close = i + 1;
        for (; close < line.size() && line[close] != c; ++close) {
          if (c == '"' && line[close] == '\\' && close + 1 < line.size() && (line[close + 1] == '"' || line[close + 1] == '\\'))
            ++close;
          w.text += line[close];
        }
        if (close >= line.size()) throw BadQuote{static_cast<int>(i) + 1, c};
        i = close + 1;
        continue;
      }
      if (c == '\\' && i + 1 < line.size()) ++i;
      w.text += line[i++];
    }
    out.push_back(std::move(w));
    if (ended_by_comment) break;
  }
  return out;
}

static bool class_match(std::string_view pat, size_t& i, char c) {
  // pat[i] == '['; on return i points past the closing ']'.
  size_t j = i + 1;
  bool negate = j < pat.size() && (pat[j] == '!' || pat[j] == '^');
  if (negate) ++j;
  bool matched = false;
  bool first = true;
  for (; j < pat.size() && (first || pat[j] != ']'); ++j, first = false) {
    if (j + 2 < pat.size() && pat[j + 1] == '-' && pat[j + 2] != ']') {
      if (pat[j] <= c && c <= pat[j + 2]) matched = true;
      j += 2;
    } else if (pat[j] == c) {
      matched = true;
    }
  }
  i = j + 1;
  return matched != negate;
}

bool glob_match(std::string_view p, std::string_view s, bool classes) {
  size_t pi = 0, si = 0, star_p = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star_p = pi++;
      star_s = si;
      continue;
    }
    if (pi < p.size()) {
      size_t next = pi;
      bool ok;
      if (classes && p[pi] == '[' && p.find(']', pi + 2) != std::string_view::npos) {
        ok = class_match(p, next, s[si]);
      } else {
        ok = p[pi] == '?' || p[pi] == s[si];
        next = pi + 1;
      }
      if (ok) {
        pi = next;
        ++si;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    pi = star_p + 1;
    si = ++star_s;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool looks_binary(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) return true;
      ++i;
      continue;
    }
    size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return true;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return true;
    i += n;
  }
  return false;
}

std::string_view prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t end = max;
  // Back over the continuation bytes (top bits 10) to the lead byte of the character s[max] is
  // in or starts: cutting before it keeps every character whole.
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

}  // namespace engine::text
