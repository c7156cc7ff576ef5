---@meta engine.fleet
-- LuaCATS stubs for require "engine.fleet".

---@class engine.fleet.Options
---@field at_once? integer|string       hosts in flight: a count or "30%" (default: 1)
---@field max_failures? integer|string  failed hosts tolerated: a count or "10%" (default: 0)

---@class engine.fleet.Result
---@field name string
---@field host any                      the element of `hosts`
---@field status "ok"|"failed"|"skipped"
---@field error? string
---@field duration number               seconds
---@field value any                     fn's first return value

---@class engine.fleet.Results: engine.fleet.Result[]
---@field ok integer
---@field failed integer
---@field skipped integer

local fleet = {}

--- Runs fn(host) for every host, each in its own coroutine, at most at_once at a time, in order.
--- Raises when failures exceed max_failures (after the running hosts finish). Yields.
---@param hosts any[]
---@param opts engine.fleet.Options|fun(host: any): any
---@param fn? fun(host: any): any
---@return engine.fleet.Results
function fleet.each(hosts, opts, fn) end

return fleet
