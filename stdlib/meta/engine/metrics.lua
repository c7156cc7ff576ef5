---@meta
-- LuaCATS definitions for require "engine.pushgateway", "engine.prometheus", "engine.http" and "std.gates".

---@class engine.pushgateway.Metric
---@field name string
---@field value number
---@field help? string
---@field type? "gauge"|"counter"   (default: "gauge")
---@field labels? table<string, string>

---@class engine.pushgateway
local pushgateway = {}
---@param opts {url?: string, basic_auth?: {user: string, password: string}, ca_file?: string, cert_file?: string, key_file?: string}
function pushgateway.configure(opts) end
--- put replaces the group's metrics; post only those named. A failure warns and returns nil, err,
--- message; with required = true it raises. Yields.
---@param grouping table<string, string>
---@param metrics engine.pushgateway.Metric[]|table<string, number>
---@param opts? {method?: "put"|"post", url?: string, required?: boolean, timeout?: number}
---@return true|nil, string|nil, string|nil
function pushgateway.push(job, grouping, metrics, opts) end
---@return true|nil, string|nil, string|nil
function pushgateway.delete(job, grouping, opts) end
--- The text exposition format of metrics (HELP and TYPE lines, escaped label values).
---@return string
function pushgateway.format(metrics) end

---@class engine.prometheus.Alert
---@field name string
---@field state "firing"|"pending"
---@field labels table<string, string>
---@field annotations table<string, string>
---@field active_at string

---@class engine.prometheus
local prometheus = {}
---@param opts {url?: string, bearer?: string, basic_auth?: table, ca_file?: string}
function prometheus.configure(opts) end
--- An instant query. Yields.
---@return {labels: table<string,string>, value: number}[]|nil, string|nil, string|nil
function prometheus.query(expr, opts) end
--- Alerts Prometheus holds, firing and pending. Yields.
---@return engine.prometheus.Alert[]|nil, string|nil, string|nil
function prometheus.alerts(opts) end

---@class std.gates
local gates = {}
--- true, or nil and why: an alert not ignored is firing (or pending, unless allow_pending), or
--- Prometheus could not be asked or answered something malformed (fails closed). Yields.
---@param opts? {ignore?: string[], allow_pending?: boolean, url?: string}
---@return true|nil, string|nil
function gates.no_firing_alerts(opts) end

---@class engine.http
local http = {}
--- Yields. nil, "timeout"|"unreachable", message when no HTTP answer came.
---@param req {method?: string, url: string, headers?: table<string,string>, body?: string, timeout?: number, idle_timeout?: number, retries?: integer, bearer?: string, basic_auth?: {user: string, password: string}, ca_file?: string, ca_data?: string, cert_file?: string, key_file?: string, cert_data?: string, key_data?: string, insecure?: boolean}
---@return {status: integer, body: string, headers: table<string,string>}|nil, string|nil, string|nil
function http.request(req) end
---@return table|nil, string|nil
function http.json_decode(text) end
--- Raises on a table that contains itself or is nested deeper than 200 levels.
---@return string
function http.json_encode(value) end
--- Marks t (a new table when nil) so json_encode writes it as an array, even when empty.
---@param t? table
---@return table
function http.json_array(t) end
--- One YAML document as a table (scalars typed as PyYAML types them); nil, "invalid yaml", "line L, column C: why".
---@return table|nil, string|nil, string|nil
function http.yaml_decode(text) end
