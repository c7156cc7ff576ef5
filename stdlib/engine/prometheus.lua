-- engine.prometheus: instant queries and the alerts Prometheus holds, for gates that decide
-- whether a rollout may go on.
local check = require "engine.check"
local http = require "engine.http"

local M = {}
local settings = {}

--- configure{url = "http://127.0.0.1:9090", bearer, basic_auth, ca_file}
function M.configure(opts)
  check.options(opts, { "url", "bearer", "basic_auth", "ca_file" }, "prometheus.configure")
  for k, v in pairs(opts) do settings[k] = v end
end

local function get(path, opts)
  local url = opts.url or settings.url
  if not url then error("prometheus: no url (prometheus.configure{url = ...})", 3) end
  local r, err, msg = http.request { url = url .. path, timeout = opts.timeout or 10, retries = 2, bearer = settings.bearer,
    basic_auth = settings.basic_auth, ca_file = settings.ca_file }
  if not r then return nil, err, msg end
  local body = http.json_decode(r.body)
  if r.status ~= 200 then
    return nil, "failed", "HTTP " .. r.status .. ": " .. ((body and body.error) or r.body:sub(1, 200))
  end
  if type(body) ~= "table" or body.status ~= "success" or type(body.data) ~= "table" then
    return nil, "malformed", "not a Prometheus API answer: " .. r.body:sub(1, 200)
  end
  return body.data
end


--- query(expr, {url, timeout}) → list of {labels, value} | nil, err, message
--- A scalar or string answer is one entry with no labels.
-- The options every call takes, checked where the runbook called.
local function call_options(opts, what)
  opts = check.options(opts, { "url", "timeout" }, what, 2)
  return { url = opts.url, timeout = check.seconds(opts.timeout, what, "timeout", 2) }
end

function M.query(expr, opts)
  opts = call_options(opts, "prometheus.query")
  local data, err, msg = get("/api/v1/query?query=" .. http.query_escape(expr), opts)
  if not data then return nil, err, msg end
  local out = {}
  if data.resultType == "vector" then
    for _, s in ipairs(data.result or {}) do out[#out + 1] = { labels = s.metric or {}, value = tonumber(s.value[2]) } end
  elseif data.resultType == "scalar" or data.resultType == "string" then
    out[1] = { labels = {}, value = tonumber(data.result[2]) or data.result[2] }
  elseif data.resultType == "matrix" then
    for _, s in ipairs(data.result or {}) do out[#out + 1] = { labels = s.metric or {}, values = s.values } end
  else
    return nil, "malformed", "unknown resultType " .. tostring(data.resultType)
  end
  return out
end

--- alerts({url}) → list of {name, state = "firing"|"pending", labels, annotations, active_at} | nil, err, message
function M.alerts(opts)
  opts = call_options(opts, "prometheus.alerts")
  local data, err, msg = get("/api/v1/alerts", opts)
  if not data then return nil, err, msg end
  if type(data.alerts) ~= "table" then return nil, "malformed", "no alerts list in the answer" end
  -- A list, not an object keyed by name: anything else would read as "no alerts" below.
  local count = 0
  for _ in pairs(data.alerts) do count = count + 1 end
  if count ~= #data.alerts then return nil, "malformed", "the answer's alerts are not a list" end
  local out = {}
  for i, a in ipairs(data.alerts) do
    if type(a) ~= "table" then return nil, "malformed", "alert #" .. i .. " is not an object" end
    local labels = type(a.labels) == "table" and a.labels or {}
    out[#out + 1] = { name = labels.alertname, state = a.state, labels = labels, annotations = a.annotations or {},
      active_at = a.activeAt }
  end
  return out
end

return M
