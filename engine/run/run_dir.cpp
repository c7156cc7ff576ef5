#include "engine/run/run_dir.hpp"

#include <chrono>
#include <cstdlib>
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

RunDir create(const std::filesystem::path& state, const std::string& runbook_name) {
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::random_device rd;
  std::string name;
  for (char c : runbook_name) name += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '-';
  for (int attempt = 0; attempt < 16; ++attempt) {
    RunDir r;
    r.id = fmt::format("{:%Y%m%d-%H%M%S}-{}-{:04x}", fmt::localtime(now), name, rd() & 0xffff);
    r.path = state / "runs" / r.id;
    std::error_code ec;
    std::filesystem::create_directories(r.path.parent_path(), ec);
    if (ec) throw ConfigError("state directory " + r.path.parent_path().string() + ": " + ec.message());
    if (std::filesystem::create_directory(r.path, ec)) return r;
    if (ec) throw ConfigError("run directory " + r.path.string() + ": " + ec.message());
  }
  throw ConfigError("could not create a unique run directory under " + state.string());
}

}  // namespace engine::run
