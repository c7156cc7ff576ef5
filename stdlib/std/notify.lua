-- std.notify: a webhook told what a run is doing (start, gate held, stop, failure, success), as
-- Slack's incoming webhooks take it ({"text": ...}) or as plain JSON with every field. A
-- notification that cannot be sent is a warning: it never changes how the run goes or ends.
local check = require "engine.check"
local http = require "engine.http"
local k8s = require "engine.k8s"

local M = {}

local cfg = {}

--- configure{url, format = "slack"|"json", runbook, timeout = 5}: where and how; no url, no sending.
function M.configure(opts)
  opts = check.options(opts, { "url", "format", "runbook", "timeout" }, "notify.configure")
  local format = opts.format or "slack"
  if format ~= "slack" and format ~= "json" then
    error("notify.configure: format must be \"slack\" or \"json\", not \"" .. tostring(format) .. "\"", 2)
  end
  cfg = { url = opts.url ~= "" and opts.url or nil, format = format, runbook = opts.runbook or "engine",
    timeout = opts.timeout or 5 }
end

--- The body a notification sends (what a test or another sender can check).
function M.body(event, message, fields)
  fields = fields or {}
  local run = k8s.identity()
  if cfg.format == "json" then
    local b = { event = event, run = run, runbook = cfg.runbook, message = message, see = "engine show " .. run }
    for k, v in pairs(fields) do b[k] = v end
    return b
  end
  local where = fields.node and (" on " .. fields.node) or ""
  return { text = string.format("%s %s%s: %s (run %s; engine show %s)", cfg.runbook, event, where, message, run, run) }
end

--- send(event, message, fields?): POSTed now; a failure is logged, never raised. Yields.
function M.send(event, message, fields)
  if not cfg.url then return false end
  if http.dry_run() then
    log.info("dry-run: would notify", { event = event, message = message })
    return false
  end
  local r, err, msg = http.request { url = cfg.url, method = "POST", headers = { ["Content-Type"] = "application/json" },
    body = http.json_encode(M.body(event, message, fields)), timeout = cfg.timeout, retries = 1 }
  if not r or r.status >= 300 then
    log.warn("notification not sent (the run goes on)", { event = event,
      error = r and ("HTTP " .. r.status) or tostring(msg or err) })
    return false
  end
  return true
end

return M
