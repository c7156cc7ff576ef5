// Errors the engine reports to a user: configuration mistakes (exit 2) carry where they are.
// A runbook failure (exit 1) is reported by the Lua layer with its own traceback.
#pragma once
#include <stdexcept>
#include <string>

namespace engine {

// A mistake in what the user gave us: a flag, a param, an inventory file. Exit code 2.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "file:line:column: message", the form editors and terminals jump to.
inline std::string at(const std::string& file, int line, int column, const std::string& msg) {
  std::string s = file;
  if (line > 0) s += ":" + std::to_string(line);
  if (column > 0) s += ":" + std::to_string(column);
  return s + ": " + msg;
}

}  // namespace engine

namespace engine {

// The runbook itself failed while running (exit 1); the message carries file:line and a traceback.
class RunbookError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace engine
