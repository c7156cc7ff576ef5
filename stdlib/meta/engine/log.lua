---@meta engine.log
-- LuaCATS stubs for require "engine.log" (the same table as the global log).
---@type engine.log
return log
