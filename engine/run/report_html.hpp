// report.html from report.json: one self-contained page (engine/run/report_html.cpp).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace engine::run {

// Past this many hosts the timeline's lanes are groups of hosts named alike.
constexpr size_t kMaxLanes = 200;

std::string html_report(const nlohmann::json& report);

}  // namespace engine::run
