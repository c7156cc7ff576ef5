---@meta engine.pushgateway
-- LuaCATS definitions for require "engine.pushgateway".

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
---@param job string
---@param grouping table<string, string>
---@param metrics engine.pushgateway.Metric[]|table<string, number>
---@param opts? {method?: "put"|"post", url?: string, required?: boolean, timeout?: number|string}
---@return true|nil, string|nil, string|nil
function pushgateway.push(job, grouping, metrics, opts) end
---@param job string
---@param grouping? table<string, string>
---@return true|nil, string|nil, string|nil
---@param opts? {url?: string, required?: boolean, timeout?: number|string}
function pushgateway.delete(job, grouping, opts) end
--- The text exposition format of metrics (HELP and TYPE lines, escaped label values).
---@param metrics table
---@return string
function pushgateway.format(metrics) end

return pushgateway
