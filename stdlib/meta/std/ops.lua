---@meta std.ops
-- LuaCATS definitions for require "std.ops": operations, in pyinfra's sense.

---@class std.ops.Operation
---@field name string                               the step's name and the log's subject
---@field holds? fun(host: engine.Host): boolean|nil, string|nil  facts only: is the host already so, and why not
---@field apply fun(host: engine.Host): any          changes the host (its primitives log dry-run lines)
---@field verify? fun(host: engine.Host, out: any): boolean|nil, string|nil  is the host so now, from what apply returned (instead of asking holds again)

---@class std.ops
local ops = {}

--- The operation, checked (name, apply, optional holds and verify; nothing else).
---@param op std.ops.Operation
---@return std.ops.Operation
function ops.define(op) end

--- Asks holds first and changes nothing when the host is already so; after apply, asks verify
--- (with apply's result) or else holds again, and raises when the host is still not so. Yields.
---@param host engine.Host|nil  nil: an operation on the cluster
---@param op std.ops.Operation
---@return any result, boolean changed
function ops.ensure(host, op) end

--- ensure inside a journaled step named op.name, whose probe is op.holds. Yields.
---@param host engine.Host|nil  nil: an operation on the cluster
---@param op std.ops.Operation
---@return any
function ops.step(host, op) end

return ops
