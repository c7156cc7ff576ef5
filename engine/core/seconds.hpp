// Seconds as a double (what runbooks, options and inventories give) to the steady clock's duration,
// for timers and deadlines.
#pragma once
#include <chrono>

namespace engine {

inline std::chrono::steady_clock::duration steady_seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace engine
