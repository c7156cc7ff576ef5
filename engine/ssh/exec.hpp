// Running one command on a session: its own channel, stdin written while stdout and stderr are
// drained together (neither can fill its window and stall the other), exit code or signal, a
// deadline that closes the channel.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "engine/ssh/error.hpp"

namespace engine::ssh {

class Session;

struct ExecRequest {
  std::string command;  // as the remote shell runs it
  std::string input;    // written to stdin, then EOF
  double timeout = 0;   // seconds; 0: none
  size_t max_output = 64 << 20;  // per stream; more is read and dropped, and said so
  // Called with each complete line as it arrives (stream = true); stderr lines with is_stderr.
  std::function<void(bool is_stderr, std::string_view line)> on_line;
};

struct ExecResult {
  int code = -1;       // -1 when the command died of a signal
  std::string signal;  // "KILL", "TERM", ... or ""
  std::string out, err;
  bool truncated = false;
  double duration = 0;
};

// Starts the command; `done` runs once, on a later turn of the loop, with the result or a failure
// ("timeout" after the deadline, "closed" if the connection died: the command may have run).
// The returned function cancels it: the channel is closed and `done` gets "timeout".
std::function<void()> exec(const std::shared_ptr<Session>& s, ExecRequest req,
                           std::function<void(ExecResult, Result)> done);

// 'text' quoted for a POSIX shell.
std::string shell_quote(std::string_view text);

}  // namespace engine::ssh
