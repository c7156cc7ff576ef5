#include "engine/run/control.hpp"

#include <fstream>
#include <sstream>

#include "engine/core/errors.hpp"

namespace engine::run {

namespace {

std::optional<Control::Verb> verb_of(const std::string& word) {
  if (word == "pause") return Control::Verb::pause;
  if (word == "continue") return Control::Verb::go_on;
  if (word == "skip") return Control::Verb::skip;
  if (word == "abort") return Control::Verb::abort;
  return std::nullopt;
}

const char* word_of(Control::Verb v) {
  switch (v) {
    case Control::Verb::pause: return "pause";
    case Control::Verb::go_on: return "continue";
    case Control::Verb::skip: return "skip";
    case Control::Verb::abort: return "abort";
  }
  return "?";
}

}  // namespace

Control parse_control(const std::vector<std::string>& words) {
  if (words.empty()) throw ConfigError(std::string("ctl: a command is needed: ") + control_usage);
  auto verb = verb_of(words[0]);
  if (!verb) throw ConfigError("ctl: '" + words[0] + "' is not " + control_usage);
  Control c{*verb, ""};
  if (c.verb == Control::Verb::skip) {
    if (words.size() < 2 || words[1].empty()) throw ConfigError("ctl skip needs the host to skip");
    c.host = words[1];
    // The control file holds one command per line, its words split on blanks.
    if (c.host.find_first_of(" \t\r\n") != std::string::npos)
      throw ConfigError("ctl skip: '" + c.host + "' is not a host name");
  } else if (words.size() > 1) {
    throw ConfigError(std::string("ctl ") + words[0] + " takes no host");
  }
  return c;
}

std::optional<Control> parse_control_line(const std::string& line) {
  std::istringstream in(line);
  std::string word, host, more;
  in >> word >> host >> more;
  auto verb = verb_of(word);
  if (!verb || !more.empty()) return std::nullopt;
  if ((*verb == Control::Verb::skip) == host.empty()) return std::nullopt;
  return Control{*verb, host};
}

std::string to_line(const Control& c) {
  return std::string(word_of(c.verb)) + (c.host.empty() ? "" : " " + c.host);
}

void send_control(const std::filesystem::path& file, const Control& c) {
  std::ofstream f(file, std::ios::app);
  f << to_line(c) << "\n";
  if (!f.flush()) throw ConfigError("cannot write " + file.string());
}

ControlReader::ControlReader(std::filesystem::path file) : file_(std::move(file)) {
  std::error_code ec;
  if (!file_.empty()) offset_ = static_cast<std::size_t>(std::filesystem::file_size(file_, ec));
  if (ec) offset_ = 0;
}

std::vector<Control> ControlReader::poll() {
  std::vector<Control> out;
  if (file_.empty()) return out;
  std::ifstream f(file_, std::ios::binary);
  if (!f) return out;
  f.seekg(static_cast<std::streamoff>(offset_));
  std::string rest((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::size_t start = 0;
  for (auto nl = rest.find('\n'); nl != std::string::npos; nl = rest.find('\n', start)) {
    if (auto c = parse_control_line(rest.substr(start, nl - start))) out.push_back(*c);
    start = nl + 1;
  }
  offset_ += start;
  return out;
}

}  // namespace engine::run
