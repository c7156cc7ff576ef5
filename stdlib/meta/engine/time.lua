---@meta engine.time
-- LuaCATS definitions for require "engine.time".
local time = {}
--- As the global sleep. Yields.
---@param seconds number
function time.sleep(seconds) end
--- Seconds on a clock that never goes back, for measuring durations.
---@return number
function time.monotonic() end
--- Seconds since the Unix epoch, with sub-second precision.
---@return number
function time.now() end
return time
