---@meta std.groups
-- LuaCATS definitions for require "std.groups": the inventory groups runbooks name by convention
-- (k8s-cp-leader, k8s-worker), which an inventory may leave out.

---@class std.groups
local groups = {}

--- inv:hosts(pattern), or no hosts when pattern is the conventional group name itself (a param
--- left at its default) and the inventory has no group or host of that name. A pattern given
--- otherwise that matches nothing still raises, as inv:hosts does.
---@param inv engine.Inventory
---@param pattern string
---@param conventional string  the param's default, e.g. "k8s-cp-leader"
---@return engine.Host[]
function groups.optional(inv, pattern, conventional) end

return groups
