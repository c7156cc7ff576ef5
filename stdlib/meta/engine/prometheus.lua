---@meta engine.prometheus
-- LuaCATS definitions for require "engine.prometheus".

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
---@param expr string
---@return {labels: table<string,string>, value: number}[]|nil, string|nil, string|nil
---@param opts? {url?: string, timeout?: number|string}
function prometheus.query(expr, opts) end
--- Alerts Prometheus holds, firing and pending. Yields.
---@return engine.prometheus.Alert[]|nil, string|nil, string|nil
---@param opts? {url?: string, timeout?: number|string}
function prometheus.alerts(opts) end

return prometheus
