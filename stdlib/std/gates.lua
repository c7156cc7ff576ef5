-- std.gates: checks a runbook runs before it changes something, and between hosts in fleet.each.
-- A gate returns true, or nil, word, message (fleet.each logs the message when it holds admission).
-- Gates fail closed: when they cannot tell, the answer is no.
local check = require "engine.check"
local prometheus = require "engine.prometheus"

local M = {}

local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

--- no_firing_alerts{ignore = {"Watchdog"}, allow_pending = true, url} → true | nil, "firing"|"unknown", message
--- Halts (nil) when an alert not ignored is firing (or pending, unless allow_pending), and also when
--- Prometheus cannot be reached or answers something malformed, as kured does: no news is not good news.
function M.no_firing_alerts(opts)
  opts = check.options(opts, { "ignore", "allow_pending", "url" }, "gates.no_firing_alerts")
  local ignore = set_of(opts.ignore)
  local alerts, err, msg = prometheus.alerts { url = opts.url }
  if not alerts then
    return nil, "unknown", string.format("cannot tell whether alerts fire (%s: %s); halting", err, tostring(msg))
  end
  local firing = {}
  for _, a in ipairs(alerts) do
    if a.state ~= "firing" and a.state ~= "pending" and a.state ~= "inactive" then
      return nil, "unknown", string.format("cannot tell whether alerts fire (alert %s has state %s); halting",
        tostring(a.name), a.state == nil and "none" or string.format("%q", tostring(a.state)))
    end
    local counts = a.state == "firing" or (a.state == "pending" and not opts.allow_pending)
    if counts and not ignore[a.name] then firing[#firing + 1] = a.name .. " (" .. a.state .. ")" end
  end
  if #firing > 0 then
    table.sort(firing)
    return nil, "firing", "alerts firing: " .. table.concat(firing, ", ")
  end
  return true
end

return M
