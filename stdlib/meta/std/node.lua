---@meta std.node
-- LuaCATS definitions for require "std.node": a Kubernetes node's operations (std.ops).

---@class std.node
local node = {}

--- Operation "drain": the node cordoned with nothing left to evict (k8s.drain's options), and with
--- delete_blocked_pods, PDB-blocked pods deleted at the timeout.
---@param opts? engine.k8s.DrainOptions|{delete_blocked_pods?: boolean}
---@return std.ops.Operation
function node.drained(opts) end

--- Operation "uncordon": the node schedulable again (only one this run cordoned).
---@return std.ops.Operation
function node.uncordoned() end

return node
