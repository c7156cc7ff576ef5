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

---@class std.gates.Workload
---@field namespace string  "*" with a selector: every namespace
---@field kind string       deployment, statefulset, daemonset (or deploy, sts, ds)
---@field name? string
---@field selector? string  a label selector, instead of a name

--- true, or nil, "not ready", message naming every workload short of ready replicas (as `kubectl
--- rollout status` reads Deployments, StatefulSets and DaemonSets); nil, "not found" for a named
--- one that does not exist; nil, the API's word when it cannot be read (fails closed). Targets are
--- "NS/KIND/NAME", "NS/KIND?SELECTOR" ("*/daemonset?app=agent") or tables. Yields.
---@param targets (string|std.gates.Workload)[]
---@return true|nil ok, string|nil word, string|nil message
function gates.workloads_ready(targets) end

return gates
