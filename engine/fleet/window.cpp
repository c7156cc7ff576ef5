#include "engine/fleet/window.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace engine::fleet {

std::optional<Amount> parse_amount(const std::string& text) {
  if (text.empty()) return std::nullopt;
  Amount a;
  std::string num = text;
  if (num.back() == '%') a.percent = true, num.pop_back();
  char* end = nullptr;
  a.value = std::strtod(num.c_str(), &end);
  if (num.empty() || end != num.c_str() + num.size() || a.value < 0 || !std::isfinite(a.value)) return std::nullopt;
  if (!a.percent && a.value != std::floor(a.value)) return std::nullopt;
  if (a.percent && a.value > 100) return std::nullopt;
  return a;
}

size_t at_once_count(Amount a, size_t total) {
  if (total == 0) return 1;
  size_t n = a.percent ? static_cast<size_t>(std::floor(total * a.value / 100.0)) : static_cast<size_t>(a.value);
  return std::clamp<size_t>(n, 1, total);
}

size_t failure_budget(Amount a, size_t total) {
  return a.percent ? static_cast<size_t>(std::floor(total * a.value / 100.0)) : static_cast<size_t>(a.value);
}

Window::Window(size_t total, size_t at_once, size_t max_failures)
    : total_(total), at_once_(std::max<size_t>(1, at_once)), max_failures_(max_failures) {}

bool Window::can_admit() const {
  if (stopped_ || over_budget() || next_ >= total_ || running_ >= at_once_) return false;
  if (!batch_) return true;
  if (running_ == 0 && batch_left_ == 0) batch_left_ = at_once_;  // the last batch is done: open the next
  return batch_left_ > 0;
}

void Window::admit() {
  ++running_;
  peak_ = std::max(peak_, running_);
  ++next_;
  if (batch_ && batch_left_ > 0) --batch_left_;
}

void Window::finish(bool ok) {
  --running_;
  if (!ok) ++failed_;
}

}  // namespace engine::fleet
