-- std.ops: operations, in pyinfra's sense. An operation declares the state a host should be in and
-- how to get there:
--   { name = "kubeadm package",                  -- the step's name, the log's subject
--     holds = function(h) return ok, why end,     -- facts only: is the host already so? (optional)
--     apply = function(h) ... end,                -- changes the host; its primitives log dry-run lines
--     verify = function(h, out) return ok, why end } -- is it so now, from what apply returned (optional)
-- ops.ensure asks `holds` first and changes nothing when the host is already so (idempotent; under
-- --dry-run the plan says "already" or shows apply's exact lines), and asks again after apply
-- (a change that did not take raises). An apply whose own command printed the fact (apt-get
-- install ... && apt-cache policy) hands it to `verify` instead: the same check, one SSH exec
-- fewer per operation. ops.step journals it, with `holds` as the step's probe: a run killed
-- inside the step re-checks the node on resume instead of stopping to ask.
local check = require "engine.check"
local http = require "engine.http"

local M = {}

local function validate(op, what)
  if type(op) ~= "table" or type(op.name) ~= "string" or type(op.apply) ~= "function" then
    error(what .. ": an operation is a table {name = string, apply = function(host), holds = function(host)}", 3)
  end
  if op.holds ~= nil and type(op.holds) ~= "function" then error(what .. ": holds must be a function(host)", 3) end
  if op.verify ~= nil and type(op.verify) ~= "function" then error(what .. ": verify must be a function(host, out)", 3) end
  check.options(op, { "name", "holds", "apply", "verify" }, what, 2)
end

--- define{name, holds, apply, verify} → the operation, checked.
function M.define(op)
  validate(op, "ops.define")
  return op
end

local function holds(op, h)
  if not op.holds then return false, "no fact tells" end
  local ok, why = op.holds(h)
  return ok == true, why
end

--- ensure(host, op) → apply's result, changed. host may be nil for an operation on the cluster
--- (its holds and apply then take none). Raises when apply raises, or when the host is still
--- not so afterwards (verify(host, out) when the operation has one, else holds asked again).
function M.ensure(h, op)
  validate(op, "ops.ensure")
  if holds(op, h) then
    log.info(op.name .. ": already so")
    return nil, false
  end
  local out = op.apply(h)
  if (op.holds or op.verify) and not http.dry_run() then
    local now, still
    if op.verify then
      local ok, why = op.verify(h, out)
      now, still = ok == true, why
    else
      now, still = holds(op, h)
    end
    if not now then
      error(string.format("%s: %s: still not so after the change%s", h and h.name or "cluster", op.name,
        still and (": " .. tostring(still)) or ""), 0)
    end
  end
  return out, true
end

--- step(host, op) → apply's result: ensure inside a journaled step named op.name, whose probe is
--- op.holds (an operation without one is run again after a cut-short step: it must be safe to).
function M.step(h, op)
  validate(op, "ops.step")
  return step(op.name, function()
    local out = M.ensure(h, op)
    return out
  end, { probe = function() return (holds(op, h)) end })
end

return M
