// engine ctl: the words an operator may send a live run, and how they travel (one line per command
// appended to the run's `control` file, which the running engine reads a few times a second). The
// CLI writes with send_control; the runtime reads with ControlReader; nothing else knows the words.
#pragma once
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace engine::run {

struct Control {
  enum class Verb { pause, go_on, skip, abort };  // go_on is the word "continue"
  Verb verb = Verb::pause;
  std::string host;  // skip's host
};

inline constexpr const char* control_usage = "pause | continue | skip HOST | abort";

// The command an operator typed ("skip", "w2"): ConfigError naming what is wrong otherwise.
Control parse_control(const std::vector<std::string>& words);
// One line of the control file: nullopt for a line this engine does not know (written by a newer
// one, or by hand), which the reader skips.
std::optional<Control> parse_control_line(const std::string& line);
std::string to_line(const Control& c);

// Appends the command to the run's control file; ConfigError naming the file when it cannot.
void send_control(const std::filesystem::path& file, const Control& c);

// The commands appended after the reader was made: a resumed run does not act again on what an
// earlier attempt was sent (an old abort). Only complete lines count; a line being written is read
// on a later poll.
class ControlReader {
 public:
  explicit ControlReader(std::filesystem::path file);
  std::vector<Control> poll();

 private:
  std::filesystem::path file_;
  std::size_t offset_ = 0;
};

}  // namespace engine::run
