// A file or directory under the system's temporary directory that a test owns: emptied when made,
// removed when the test ends, so the suite leaves nothing in /tmp.
#pragma once
#include <filesystem>
#include <string>

struct Scratch {
  std::filesystem::path path;
  explicit Scratch(const std::string& name) : path(std::filesystem::temp_directory_path() / name) {
    std::filesystem::remove_all(path);
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};
