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

---@class engine.prometheus.ConfigureOptions
---@field url? string
---@field bearer? string
---@field basic_auth? table
---@field ca_file? string

---@param opts engine.prometheus.ConfigureOptions
function prometheus.configure(opts) end

---@class engine.prometheus.QueryResult
---@field labels table<string,string>
---@field value number

---@class engine.prometheus.QueryOptions
---@field url? string
---@field timeout? number|string

--- An instant query. Yields.
---@param expr string
---@return engine.prometheus.QueryResult[]|nil, string|nil, string|nil
---@param opts? engine.prometheus.QueryOptions
function prometheus.query(expr, opts) end

---@class engine.prometheus.AlertsOptions
---@field url? string
---@field timeout? number|string

--- Alerts Prometheus holds, firing and pending. Yields.
---@return engine.prometheus.Alert[]|nil, string|nil, string|nil
---@param opts? engine.prometheus.AlertsOptions
function prometheus.alerts(opts) end

return prometheus
