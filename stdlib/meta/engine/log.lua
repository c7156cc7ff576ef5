---@meta engine.log
-- LuaCATS definitions for require "engine.log" (the same table as the global log).
---@type engine.log
return log
