---@meta std.gates
-- LuaCATS definitions for require "std.gates".

---@class std.gates
local gates = {}

---@class std.gates.NoFiringAlertsOptions
---@field ignore? string[]
---@field allow_pending? boolean
---@field url? string

--- true, or nil, "firing", message: an alert not ignored is firing (or pending, unless
--- allow_pending); nil, "unknown", message: Prometheus could not be asked or answered something
--- malformed (fails closed). Yields.
---@param opts? std.gates.NoFiringAlertsOptions
---@return true|nil ok, "firing"|"unknown"|nil word, string|nil message
function gates.no_firing_alerts(opts) end

return gates
