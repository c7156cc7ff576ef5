// Running a local program to completion before the event loop starts (inventory scripts, Ansible's
// ansible-inventory): no shell, stdin from /dev/null, output captured, a deadline that kills the
// program's whole process group.
#pragma once
#include <string>
#include <vector>

namespace engine {

struct ProcessResult {
  bool started = false;    // false: the program could not be run (error says why)
  bool timed_out = false;  // killed at the deadline
  int code = -1;           // exit status; -1 when killed by a signal
  std::string out, err, error;
};

ProcessResult run_process(const std::vector<std::string>& argv, double timeout_seconds);

// The program's path found on $PATH (or argv0 itself when it has a slash), or "" when there is none.
std::string find_program(const std::string& name);

}  // namespace engine
