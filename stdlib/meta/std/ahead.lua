---@meta std.ahead
-- LuaCATS definitions for require "std.ahead": work on the hosts that come next, done while the
-- work that must come first runs (k8s-upgrade prepares its workers while the control plane after
-- the leader is upgraded, and the next control-plane node while one finishes).

---@class std.ahead.Options
---@field at_once? integer|string   hosts prepared at once: a count or "10%" (default: 1)

---@class std.ahead
local ahead = {}

--- Runs fn() and, at the same time, prepare(host) for each of hosts in order, at most at_once at a
--- time. Once fn has returned or raised no further host is prepared; the ones being prepared finish
--- first (when fn raised, a warning names them at once; a second Ctrl-C cancels them). prepare's
--- errors are warnings naming the host: the host's own turn must do the same work (steps it runs
--- again are found done in the journal). Returns fn's results; fn's error is raised again as it
--- was. fn runs in a task of its own, as the caller's host (inside a host's turn: that host's log
--- lines and step names, counted apart from the caller's: fn's step names must differ). Yields.
---@param fn fun(): any
---@param hosts any[]
---@param opts std.ahead.Options
---@param prepare fun(host: any)
---@return any ...
function ahead.alongside(fn, hosts, opts, prepare) end

return ahead
