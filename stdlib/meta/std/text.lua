---@meta std.text
-- LuaCATS definitions for require "std.text".

---@class std.text
local text = {}

--- A line diff: "- line" / "+ line" for what changed (unchanged lines left out); empty when equal.
---@param old string
---@param new string
---@return string[]
function text.diff(old, new) end

return text
