-- engine.pushgateway: gauges and counters pushed to a Prometheus Pushgateway, in the text
-- exposition format. A failed push warns and returns nil, err; it fails the runbook only when
-- asked ({required = true}), because a monitoring outage should not stop a repair.
local check = require "engine.check"
local http = require "engine.http"

local M = {}
local settings = { url = nil, basic_auth = nil, ca_file = nil, cert_file = nil, key_file = nil }

--- configure{url = "http://127.0.0.1:9091", basic_auth = {user, password}, ca_file, cert_file, key_file}
function M.configure(opts)
  check.options(opts, { "url", "basic_auth", "ca_file", "cert_file", "key_file" }, "pushgateway.configure")
  for k, v in pairs(opts) do settings[k] = v end
end

local function escape_label(v)
  return (tostring(v):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"'))
end

local function escape_help(v)
  return (tostring(v):gsub("\\", "\\\\"):gsub("\n", "\\n"))
end

local function check_name(name, what)
  if type(name) ~= "string" or not name:match("^[a-zA-Z_:][a-zA-Z0-9_:]*$") then
    error(what .. " '" .. tostring(name) .. "' is not a valid Prometheus name", 3)
  end
end

local function number(v)
  if v == math.huge then return "+Inf" elseif v == -math.huge then return "-Inf" elseif v ~= v then return "NaN" end
  if math.type(v) == "integer" then return tostring(v) end
  return string.format("%.17g", v)
end

--- The text exposition of metrics: a list of {name, value, help, type = "gauge"|"counter", labels},
--- or a map of name → value (gauges).
function M.format(metrics)
  local list = {}
  if metrics[1] == nil then
    local names = {}
    for k in pairs(metrics) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do list[#list + 1] = { name = k, value = metrics[k] } end
  else
    list = metrics
  end
  local out, described = {}, {}
  for _, m in ipairs(list) do
    check_name(m.name, "metric name")
    if type(m.value) ~= "number" then error("metric " .. m.name .. ": value must be a number", 2) end
    local mtype = m.type or "gauge"
    if mtype ~= "gauge" and mtype ~= "counter" then error("metric " .. m.name .. ": type must be gauge or counter", 2) end
    if not described[m.name] then
      described[m.name] = true
      out[#out + 1] = "# HELP " .. m.name .. " " .. escape_help(m.help or m.name)
      out[#out + 1] = "# TYPE " .. m.name .. " " .. mtype
    end
    local labels = {}
    local keys = {}
    for k in pairs(m.labels or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      check_name(k, "label name")
      labels[#labels + 1] = k .. '="' .. escape_label(m.labels[k]) .. '"'
    end
    out[#out + 1] = m.name .. (#labels > 0 and ("{" .. table.concat(labels, ",") .. "}") or "") .. " " .. number(m.value)
  end
  return table.concat(out, "\n") .. "\n"
end

-- /metrics/job/<job>/<label>/<value>...; a value with a '/' (or empty) goes base64url-encoded.
local function group_path(job, grouping)
  local function seg(name, v)
    v = tostring(v)
    if v == "" or v:find("/", 1, true) then return "/" .. name .. "@base64/" .. (v == "" and "=" or http.base64url(v)) end
    return "/" .. name .. "/" .. http.query_escape(v)
  end
  local p = "/metrics" .. seg("job", job)
  local keys = {}
  for k in pairs(grouping or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do check_name(k, "grouping label"); p = p .. seg(k, grouping[k]) end
  return p
end

local function send(method, job, grouping, body, opts)
  local url = opts.url or settings.url
  if not url then error("pushgateway: no url (pushgateway.configure{url = ...})", 3) end
  if http.dry_run() then
    log.info("dry-run: would " .. method .. " to the Pushgateway", { job = job })
    return true
  end
  local r, err, msg = http.request { method = method, url = url .. group_path(job, grouping), body = body,
    headers = { ["Content-Type"] = "text/plain; version=0.0.4" }, timeout = check.seconds(opts.timeout, "pushgateway." .. method:lower(), "timeout", 2) or 10, retries = 2,
    basic_auth = settings.basic_auth, ca_file = settings.ca_file, cert_file = settings.cert_file, key_file = settings.key_file }
  if r and r.status >= 200 and r.status < 300 then return true end
  local why = r and ("HTTP " .. r.status .. ": " .. r.body:sub(1, 200)) or (err .. ": " .. tostring(msg))
  if opts.required then error("pushgateway " .. method .. " failed: " .. why, 3) end
  log.warn("pushgateway " .. method .. " failed", { job = job, error = why })
  return nil, r and "failed" or err, why
end

--- push(job, grouping_labels, metrics, {method = "put"|"post", url, required, timeout}) → true | nil, err, message
--- put replaces every metric of the group; post replaces only the metrics named.
function M.push(job, grouping, metrics, opts)
  opts = check.options(opts, { "method", "url", "required", "timeout" }, "pushgateway.push")
  local method = (opts.method or "put"):upper()
  if method ~= "PUT" and method ~= "POST" then error("pushgateway.push: method must be put or post", 2) end
  return send(method, job, grouping, M.format(metrics), opts)
end

--- delete(job, grouping_labels, {url, required}) → true | nil, err, message
function M.delete(job, grouping, opts)
  opts = check.options(opts, { "url", "required", "timeout" }, "pushgateway.delete")
  return send("DELETE", job, grouping, nil, opts)
end

return M
