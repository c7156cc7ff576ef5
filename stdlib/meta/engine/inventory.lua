---@meta engine.inventory
-- LuaCATS definitions for require "engine.inventory".

---@class engine.inventory
local inventory = {}
--- The inventory host, given the host or its name; raises naming `what` when there is none.
---@param host_or_name engine.Host|string
---@param what? string
---@return engine.Host
function inventory.host(host_or_name, what) end

return inventory
