// Small string helpers shared by params, inventories and the CLI.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace engine::text {

std::string trim(std::string_view s);
std::vector<std::string> split(std::string_view s, char sep);
bool starts_with(std::string_view s, std::string_view prefix);
std::string lower(std::string s);  // ASCII

// Edit distance, for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` if it is close enough to be a plausible typo, else "".
std::string closest(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" when nothing is close.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

// One word of a shell-like line, and the 1-based column where it starts.
struct Word {
  std::string text;
  int column;
};

// Splits like Python's shlex.split in POSIX mode: whitespace, '...' and "..." quoting, backslash
// escapes; with `comments`, a '#' outside quotes ends the line. Throws BadQuote on an unterminated
// quote.
struct BadQuote {
  int column;
  char quote;
};
std::vector<Word> shell_words(std::string_view line, bool comments);

// Shell-style glob: *, ?, [abc], [a-z], [!a]. With classes = false only * and ? are special, as in
// OpenSSH's known_hosts and ssh_config patterns (where "[host]:port" is literal).
bool glob_match(std::string_view pattern, std::string_view s, bool classes = true);

// Whether `s` is not text a log can show as it is: control bytes other than tab and carriage
// return, or bytes that are not UTF-8 (each would become an escape or a replacement character).
bool looks_binary(std::string_view s);

// At most `max` bytes of `s`, never ending inside a UTF-8 character: a cut name in a report or a
// log stays valid text (a character cut in two would show as a replacement character).
std::string_view prefix(std::string_view s, size_t max);

}  // namespace engine::text
