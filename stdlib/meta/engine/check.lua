---@meta engine.check
-- LuaCATS definitions for require "engine.check".

---@class engine.check
local check = {}
--- Raises at the runbook's line on a key of opts not in allowed, with the closest valid one.
--- depth: how many functions above the caller of check.options the error points (default 1).
---@param opts table|nil
---@param allowed string[]
---@param what string   the function's name, as the error shows it ("mylib.drain")
---@param depth? integer
---@return table opts   opts, or a new empty table when nil
function check.options(opts, allowed, what, depth) end
--- Seconds from a number or a duration string ("90s", "10m", "1h30m", "250ms"); nil for nil.
--- Raises on anything else, or a negative duration.
---@param value number|string|nil
---@param what string
---@param field? string
---@param depth? integer
---@return number|nil
function check.seconds(value, what, field, depth) end
--- Another runbook's params, resolved as `engine run RUNBOOK -e name=value ...` would resolve
--- them (defaults, types, ranges, patterns, required ones), before they are handed to it (a Job
--- that will run it). runbook: a path, relative to the calling runbook's directory.
--- Returns nil and the refusal, worded as engine run's, for a value it refuses; raises when the
--- file is not a runbook, or an item is not a string. Since 0.2.
---@param runbook string
---@param given string[]   "name=value" items
---@return table|nil params
---@return string|nil err
function check.params(runbook, given) end

return check
