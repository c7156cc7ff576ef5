// report.html: one self-contained file (no network, no external script or font) that draws a run's
// report.json: a timeline with a lane per host (steps as bars coloured by outcome, drains, gate
// waits and commands visible, hover for detail), the params, the plan of a dry run, the recap and
// what went wrong. Past kMaxLanes hosts, lanes collapse to groups of hosts named alike.
#include "engine/run/report_html.hpp"

#include <string>

namespace engine::run {

namespace {

constexpr const char* kPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>engine run report</title>
<style>
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 18px 0 6px; }
.meta span { margin-right: 16px; } .ok { color: #1a7f37; } .failed, .error { color: #cf222e; } .interrupted { color: #9a6700; }
table { border-collapse: collapse; } td, th { padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }
#timeline { position: relative; border-left: 1px solid #ccc; }
.lane { display: flex; align-items: center; height: 22px; border-bottom: 1px solid #f0f0f0; }
.lane .name { width: 180px; flex: none; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; padding-right: 6px; }
.lane .track { position: relative; flex: 1; height: 18px; }
.bar { position: absolute; top: 2px; height: 10px; min-width: 2px; border-radius: 2px; opacity: .9; }
.bar.step.done { background: #2da44e; } .bar.step.failed { background: #cf222e; } .bar.step.skipped { background: #afb8c1; }
.bar.drain { background: #bf8700; top: 12px; height: 5px; } .bar.gate { background: #8250df; }
.bar.exec { background: #0969da; top: 13px; height: 4px; opacity: .6; }
.axis { display: flex; margin-left: 180px; color: #666; font-size: 11px; justify-content: space-between; }
.legend span { display: inline-block; margin-right: 12px; } .legend i { display: inline-block; width: 12px; height: 8px; margin-right: 4px; }
pre { background: #f6f8fa; padding: 6px; overflow: auto; max-height: 300px; }
</style></head>
<body>
<h1 id="title"></h1>
<div class="meta" id="meta"></div>
<h2>Timeline</h2>
<div class="legend"><span><i style="background:#2da44e"></i>step done</span><span><i style="background:#cf222e"></i>step failed</span>
<span><i style="background:#afb8c1"></i>done in an earlier run</span><span><i style="background:#bf8700"></i>drain</span>
<span><i style="background:#8250df"></i>gate wait</span><span><i style="background:#0969da"></i>command</span></div>
<div class="axis" id="axis"></div>
<div id="timeline"></div>
<div id="collapsed"></div>
<h2>Recap</h2><table id="recap"><thead><tr><th>host</th><th>status</th><th>seconds</th><th>error</th></tr></thead><tbody></tbody></table>
<div id="problems"></div>
<div id="plan"></div>
<h2>Params</h2><table id="params"><tbody></tbody></table>
<script>
const DATA = __DATA__;
const MAX_LANES = __MAX_LANES__;
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function fmt(s) { return (Math.round(s * 10) / 10).toFixed(1) + "s"; }
const total = Math.max(DATA.seconds || 0, 0.001);
document.getElementById("title").textContent = (DATA.runbook || "runbook") + " — " + (DATA.run || "");
const meta = document.getElementById("meta");
meta.appendChild(el("span", {class: DATA.outcome || ""}, "outcome: " + (DATA.outcome || "running") + " (exit " + DATA.exit_code + ")"));
meta.appendChild(el("span", {}, "started " + (DATA.started || "?")));
meta.appendChild(el("span", {}, "finished " + (DATA.finished || "?")));
meta.appendChild(el("span", {}, "took " + fmt(DATA.seconds || 0)));
const axis = document.getElementById("axis");
for (let i = 0; i <= 4; i++) axis.appendChild(el("span", {}, fmt(total * i / 4)));

// Lanes: "(run)" for what belongs to no host, then each host by when it started.
const hosts = Object.entries(DATA.hosts || {}).sort((a, b) => (a[1].start ?? 1e18) - (b[1].start ?? 1e18));
const lanes = new Map([["(run)", {name: "(run)", hosts: [""], items: []}]]);
let groupOf = h => h;
if (hosts.length > MAX_LANES) {
  // Too many to read one by one: hosts named alike (node-001 ... node-999) share a lane.
  groupOf = h => h.replace(/[-_.]?\d+$/, "") + "*";
  document.getElementById("collapsed").textContent =
    hosts.length + " hosts: lanes are groups of hosts named alike (each bar spans its step on every host of the group)";
}
for (const [h] of hosts) {
  const g = groupOf(h);
  if (!lanes.has(g)) lanes.set(g, {name: g, hosts: [], items: []});
  lanes.get(g).hosts.push(h);
}
function laneFor(host) {
  if (!host || !DATA.hosts || !(host in DATA.hosts)) return lanes.get("(run)");
  return lanes.get(groupOf(host));
}
for (const s of DATA.steps || []) {
  const slash = s.step.indexOf("/");
  const host = slash < 0 ? "" : s.step.slice(0, slash);
  const name = slash < 0 ? s.step : s.step.slice(slash + 1);
  let tip = name + ": " + s.status + ", " + fmt(s.seconds || 0) + (host ? " on " + host : "");
  if (s.error) tip += "\n" + s.error;
  if (s.results) tip += "\n" + JSON.stringify(s.results).slice(0, 400);
  laneFor(host).items.push({kind: "step", cls: "step " + s.status, start: s.start ?? 0, end: s.end ?? 0, name, tip});
}
for (const s of DATA.spans || []) {
  const tip = s.kind + " " + s.name + ": " + s.outcome + ", " + fmt(s.end - s.start) + (s.host ? " on " + s.host : "");
  laneFor(s.host).items.push({kind: s.kind, cls: s.kind, start: s.start, end: s.end, name: s.name, tip});
}
const timeline = document.getElementById("timeline");
for (const lane of lanes.values()) {
  if (lane.name === "(run)" && lane.items.length === 0) continue;
  const row = el("div", {class: "lane", "data-host": lane.name});
  const label = lane.hosts.length > 1 ? lane.name + " (" + lane.hosts.length + " hosts)" : lane.name;
  const status = lane.hosts.length === 1 && DATA.hosts && DATA.hosts[lane.name] ? DATA.hosts[lane.name].status : "";
  row.appendChild(el("div", {class: "name " + status, title: label + (status ? ": " + status : "")}, label));
  const track = el("div", {class: "track"});
  // In a group lane a step is one bar from its first start to its last end.
  let items = lane.items;
  if (lane.hosts.length > 1) {
    const merged = new Map();
    for (const it of items) {
      const key = it.kind + "\u0000" + it.name;
      const m = merged.get(key);
      if (!m) merged.set(key, Object.assign({}, it, {count: 1}));
      else { m.start = Math.min(m.start, it.start); m.end = Math.max(m.end, it.end); m.count++;
             if (it.cls.includes("failed")) m.cls = it.cls; m.tip = it.name + ": " + m.count + " hosts"; }
    }
    items = [...merged.values()];
  }
  for (const it of items) {
    const bar = el("div", {class: "bar " + it.cls, "data-step": it.name, title: it.tip});
    bar.style.left = (100 * it.start / total) + "%";
    bar.style.width = (100 * Math.max(it.end - it.start, 0) / total) + "%";
    track.appendChild(bar);
  }
  row.appendChild(track);
  timeline.appendChild(row);
}
const recap = document.querySelector("#recap tbody");
for (const [h, o] of Object.entries(DATA.hosts || {}).sort()) {
  const tr = el("tr", {"data-host": h});
  tr.appendChild(el("td", {}, h));
  tr.appendChild(el("td", {class: o.status.replace(" ", "-")}, o.status));
  tr.appendChild(el("td", {}, fmt(o.seconds || 0)));
  tr.appendChild(el("td", {}, o.error || ""));
  recap.appendChild(tr);
}
const problems = document.getElementById("problems");
for (const [title, list] of [["Errors", DATA.errors || []], ["Warnings", DATA.warnings || []]]) {
  if (!list.length) continue;
  problems.appendChild(el("h2", {}, title + " (" + list.length + ")"));
  const ul = el("ul");
  for (const e of list.slice(0, 500))
    ul.appendChild(el("li", {}, (e.time || "") + " " + (e.host ? "[" + e.host + "] " : "") + e.msg +
                                 (e.fields ? " " + JSON.stringify(e.fields) : "")));
  problems.appendChild(ul);
}
if ((DATA.plan || []).length) {
  const plan = document.getElementById("plan");
  plan.appendChild(el("h2", {}, "Plan (dry run: nothing was changed)"));
  const pre = el("pre");
  pre.textContent = DATA.plan.map(p => (p.host || "(run)") + "  " + (p.step || "-") + "  " + p.action +
                                       (p.fields ? " " + JSON.stringify(p.fields) : "")).join("\n");
  plan.appendChild(pre);
}
const params = document.querySelector("#params tbody");
for (const [k, v] of Object.entries(DATA.params || {})) {
  const tr = el("tr");
  tr.appendChild(el("td", {}, k));
  tr.appendChild(el("td", {}, typeof v === "string" ? v : JSON.stringify(v)));
  params.appendChild(tr);
}
</script></body></html>
)HTML";

}  // namespace

std::string html_report(const nlohmann::json& report) {
  // The data goes inside a <script>: "</" would end it early, and U+2028/9 are line ends in JS.
  std::string data = report.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  std::string safe;
  safe.reserve(data.size() + 64);
  size_t from = 0;
  for (size_t at; (at = data.find("</", from)) != std::string::npos; from = at + 2) {
    safe.append(data, from, at - from);
    safe += "<\\/";
  }
  safe.append(data, from, std::string::npos);
  std::string page = kPage;
  auto put = [&](const std::string& key, const std::string& value) {
    auto at = page.find(key);
    if (at != std::string::npos) page.replace(at, key.size(), value);
  };
  put("__MAX_LANES__", std::to_string(kMaxLanes));
  put("__DATA__", safe);
  return page;
}

}  // namespace engine::run
