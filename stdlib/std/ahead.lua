-- std.ahead: work on the hosts that come next, done while the work that must come first runs.
-- k8s-upgrade prepares its workers (the apt source, the kubeadm package, `kubeadm upgrade node`:
-- kubeadm's own worker procedure puts them before the drain) while the control-plane nodes after
-- the leader are upgraded, a phase that mostly waits for static pods; a worker's turn then finds
-- them done in the journal and starts at its drain. Inside a control-plane node's turn, once its
-- `kubeadm upgrade` is done, the next one's apt source and kubeadm are prepared the same way.
local check = require "engine.check"
local fleet = require "engine.fleet"

local M = {}

--- alongside(fn, hosts, {at_once}, prepare) → fn's results.
--- Runs fn() and, at the same time, prepare(host) for each of hosts in order, at most at_once at a
--- time (a count or "10%", as fleet.each takes it; default 1). Once fn has returned or raised, no
--- further host is prepared; the ones being prepared finish first (when fn raised, a warning names
--- them at once). prepare's errors are warnings naming the host: the host's own turn does the same
--- work again and reports it there, so prepare must only do what that turn would (steps the turn
--- runs again are found done in the journal). fn's error is raised again as it was. fn runs in a
--- task of its own, as the caller's host (inside a host's turn: that host's log lines and step
--- names, counted apart from the caller's, so fn's step names must differ from the caller's).
function M.alongside(fn, hosts, opts, prepare)
  if type(fn) ~= "function" then error("ahead.alongside: fn must be a function", 2) end
  if type(hosts) ~= "table" then error("ahead.alongside: hosts must be a list", 2) end
  if type(opts) ~= "table" then error("ahead.alongside: the third argument is {at_once = ...}", 2) end
  if type(prepare) ~= "function" then error("ahead.alongside: prepare must be a function(host)", 2) end
  check.options(opts, { "at_once" }, "ahead.alongside", 1)
  -- Two tasks on the event loop: fleet.each is the way to start them. Named "" so that fn's own
  -- fleet.each calls are the run's phases (hosts of the recap), as when fn is called directly.
  local MAIN, SIDE = { name = "" }, { name = "" }
  local over, results, failure = false, nil, nil
  local preparing, order = {}, {}  -- the hosts being prepared now, and the order they started in
  local branches = fleet.each({ MAIN, SIDE }, { at_once = 2, max_failures = 2 }, function(which)
    if which == MAIN then
      -- however fn ends (an interruption too, which pcall passes on), no further host is prepared
      local _ <close> = setmetatable({}, { __close = function() over = true end })
      local ok, err = pcall(function() results = table.pack(fn()) end)
      if not ok then
        failure = err  -- kept whole: raised again below, as fn raised it
        -- Said now, not when the preparations in flight end (an apt install may take minutes):
        -- the operator knows why the run has not stopped yet, and that a second Ctrl-C cancels them.
        local busy = {}
        for _, name in ipairs(order) do if preparing[name] then busy[#busy + 1] = name end end
        if #busy > 0 then
          log.warn("the work the preparations ran beside failed: waiting for the preparations in flight to end "
            .. "(Ctrl-C twice cancels them)", { hosts = table.concat(busy, ","), error = tostring(err):match("^[^\n]*") })
        end
      end
      return
    end
    if #hosts == 0 then return end
    fleet.each(hosts, { at_once = opts.at_once or 1 }, function(h)
      if over then return end
      local name = type(h) == "table" and h.name or tostring(h)
      preparing[name] = true
      order[#order + 1] = name
      local _ <close> = setmetatable({}, { __close = function() preparing[name] = nil end })
      local ok, err = pcall(prepare, h)
      if not ok then
        log.warn("preparing ahead failed: its own turn does that work", { error = tostring(err) })
      end
    end)
  end)
  if failure ~= nil then error(failure, 0) end
  if branches[1].status == "failed" then error(branches[1].error, 0) end  -- interrupted, cancelled
  return table.unpack(results, 1, results.n)
end

return M
