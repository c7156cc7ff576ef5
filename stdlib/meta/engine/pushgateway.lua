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

---@class engine.pushgateway.ConfigureOptions
---@field url? string
---@field basic_auth? {user: string, password: string}
---@field ca_file? string
---@field cert_file? string
---@field key_file? string

---@param opts engine.pushgateway.ConfigureOptions
function pushgateway.configure(opts) end

---@class engine.pushgateway.PushOptions
---@field method? "put"|"post"  (default: "put")
---@field url? string
---@field required? boolean
---@field timeout? number|string

--- put replaces the group's metrics; post only those named. A failure warns and returns nil, err,
--- message; with required = true it raises. Yields.
---@param job string
---@param grouping table<string, string>
---@param metrics engine.pushgateway.Metric[]|table<string, number>
---@param opts? engine.pushgateway.PushOptions
---@return true|nil, string|nil, string|nil
function pushgateway.push(job, grouping, metrics, opts) end

---@class engine.pushgateway.DeleteOptions
---@field url? string
---@field required? boolean
---@field timeout? number|string

---@param job string
---@param grouping? table<string, string>
---@return true|nil, string|nil, string|nil
---@param opts? engine.pushgateway.DeleteOptions
function pushgateway.delete(job, grouping, opts) end
--- The text exposition format of metrics (HELP and TYPE lines, escaped label values).
---@param metrics table
---@return string
function pushgateway.format(metrics) end

return pushgateway
