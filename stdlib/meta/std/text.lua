---@meta std.text
-- LuaCATS definitions for require "std.text".

---@class std.text
local text = {}

--- A line diff: "- line" / "+ line" for what changed (unchanged lines left out); empty when equal.
---@param old string
---@param new string
---@return string[]
function text.diff(old, new) end

---@class std.text.ColumnsOpts
---@field right? table<integer, boolean> columns to right-align (numbers), by position

--- The rows as one text, each column as wide as its widest cell (two spaces between, the last not
--- padded): tables that stay aligned with long node names. rows[1], the header, sets how many
--- columns there are; a nil cell prints as "-".
---@param rows any[][]
---@param opts? std.text.ColumnsOpts
---@return string
function text.columns(rows, opts) end

return text
