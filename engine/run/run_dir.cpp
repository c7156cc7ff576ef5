#include "engine/run/run_dir.hpp"

#include <fcntl.h>
#include <stdio.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "engine/core/errors.hpp"

namespace engine::run {

std::filesystem::path state_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x) return std::filesystem::path(x) / "engine";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home && *home ? home : "/tmp") / ".local/state/engine";
}

RunDir create(const std::filesystem::path& state, const std::string& runbook_name,
              const std::function<void(const RunDir&)>& fill, const std::string& fixed_id) {
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::random_device rd;
  std::string name;
  for (char c : runbook_name) name += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '-';
  std::error_code ec;
  for (const auto* sub : {"runs", "incoming"}) {
    std::filesystem::create_directories(state / sub, ec);
    if (ec) throw ConfigError("state directory " + (state / sub).string() + ": " + ec.message());
  }
  for (int attempt = 0; attempt < 16; ++attempt) {
    RunDir r;
    r.id = fixed_id.empty() ? fmt::format("{:%Y%m%d-%H%M%S}-{}-{:04x}", fmt::localtime(now), name, rd() & 0xffff) : fixed_id;
    auto final_path = state / "runs" / r.id;
    r.path = state / "incoming" / r.id;
    if (std::filesystem::exists(final_path, ec) || !std::filesystem::create_directory(r.path, ec)) {
      if (ec) throw ConfigError("run directory " + r.path.string() + ": " + ec.message());
      if (!fixed_id.empty()) throw ConfigError("a run '" + fixed_id + "' exists already under " + state.string());
      continue;
    }
    try {
      fill(r);
    } catch (...) {
      std::filesystem::remove_all(r.path, ec);
      throw;
    }
    // RENAME_NOREPLACE: a run directory of the same id made meanwhile is never replaced.
    if (::renameat2(AT_FDCWD, r.path.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) != 0) {
      int err = errno;
      std::filesystem::remove_all(r.path, ec);
      if (err == EEXIST && fixed_id.empty()) continue;
      if (err == EEXIST) throw ConfigError("a run '" + fixed_id + "' exists already under " + state.string());
      throw ConfigError("run directory " + final_path.string() + ": " + std::strerror(err));
    }
    r.path = final_path;
    return r;
  }
  throw ConfigError("could not create a unique run directory under " + state.string());
}

}  // namespace engine::run
