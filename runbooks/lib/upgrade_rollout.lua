-- The worker rollout of k8s-upgrade.lua beyond fleet.each's window: the workers not yet upgraded
-- tainted PreferNoSchedule while the current ones drain (evicted pods should not land on a node
-- that is drained later: k0sctl#537's pods bounced from node to node), and unreachable workers
-- skipped when the operator allows it (k0sctl#1118: one dead node should not stop a 500-node
-- rollout).
local fleet = require "engine.fleet"
local http = require "engine.http"
local k8s = require "engine.k8s"

local M = {}

-- The taint's value is the run's identity (k8s.taint): a run removes only its own, a resumed run
-- (same identity) what the stopped one left.
M.TAINT = "engine.dev/upgrade-next"

--- last(hosts, name): the host of that name moved to the end of the list, in place (said when it
--- moves: the engine runs on that node, and its drain evicts the engine).
function M.last(hosts, name)
  for i, h in ipairs(hosts) do
    if h.name == name then
      if i < #hosts then
        table.remove(hosts, i)
        hosts[#hosts + 1] = h
        log.info("this engine runs on this node: it is upgraded last among its kind", { node = name })
      end
      return
    end
  end
end

--- How many hosts an at_once of "N" or "P%" means for `total` (as fleet.each rounds it).
function M.count(amount, total)
  local pct = tostring(amount):match("^(%d+)%%$")
  if pct then return math.max(1, math.floor(total * tonumber(pct) / 100)) end
  return math.max(1, math.tointeger(tonumber(amount)) or 1)
end

--- Taints PreferNoSchedule the workers after h (in rollout order) whose turn has not started. kOps
--- taints every node its rolling update will replace, at the start, so an evicted pod moves once:
--- onto a node already done. Here that waits until as many workers are done as drain at once
--- (`count`): before, the few nodes done would take every pod the window evicts (the canary alone
--- the next window's), so only the next `count` are tainted and the rest share the pods. state
--- ({done = workers finished, put = {name = true}}) is the rollout's: each taint is put once (a
--- resumed run finds its own in place), several at a time. Steering only: a taint that cannot be
--- put is a warning, not a stop.
function M.taint_next(workers, started, h, count, state)
  local limit = state.done >= count and math.huge or count
  local after, n, untainted = false, 0, {}
  for _, w in ipairs(workers) do
    if w == h then
      after = true
    elseif after and not started[w.name] and n < limit then
      if not state.put[w.name] then untainted[#untainted + 1] = w end
      n = n + 1
    end
  end
  if #untainted == 0 then return end
  fleet.each(untainted, { at_once = 16, max_failures = #untainted }, function(w)
    local ok, err, msg = k8s.taint(w.name, M.TAINT, "PreferNoSchedule")
    if ok then state.put[w.name] = true
    else log.warn("could not taint the next worker", { node = w.name, error = msg or err }) end
  end)
end

--- Removes this run's taint from the host (done with it), or from every worker (the rollout ended,
--- however it ended): none is left behind.
function M.untaint(hosts)
  local ask = hosts
  if #hosts > 1 and not http.dry_run() then
    -- One list says which still carry the taint: the sweep after a 500-worker rollout was 500
    -- reads in turn. A node the list does not have is asked on its own; so is every node in a dry
    -- run, whose planned taints no list shows.
    local items = k8s.list("nodes")
    if items then
      local listed, tainted = {}, {}
      for _, n in ipairs(items) do
        listed[n.metadata.name] = true
        for _, t in ipairs((n.spec or {}).taints or {}) do
          if t.key == M.TAINT and t.effect == "PreferNoSchedule" then tainted[n.metadata.name] = true end
        end
      end
      ask = {}
      for _, w in ipairs(hosts) do if tainted[w.name] or not listed[w.name] then ask[#ask + 1] = w end end
    end
  end
  for _, w in ipairs(ask) do
    local ok, err, msg = k8s.untaint(w.name, M.TAINT, "PreferNoSchedule")
    if not ok then log.warn("could not remove the upgrade taint", { node = w.name, error = msg or err }) end
  end
end

--- Why the worker cannot be upgraded now, or nil: NotReady before this run touched it (not cordoned
--- by it), or SSH refused, unreachable or timed out. A node already at the target and uncordoned
--- is never skipped (its steps are done or find it done).
function M.unreachable(h, target)
  local n = k8s.get("nodes", h.name)
  if n then
    local info = k8s.node_info(n)
    if info.kubelet_version == "v" .. target and not info.unschedulable then return nil end
    if not info.ready and not (info.unschedulable and info.cordoned_by == k8s.identity()) then
      return "NotReady before the upgrade touched it"
    end
  end
  local r, err, msg = h:exec("true", { timeout = 20, read_only = true, sudo = false })
  if not r and (err == "refused" or err == "unreachable" or err == "timeout") then
    return "ssh " .. err .. ": " .. tostring(msg)
  end
  return nil
end

--- "w3 (ssh refused: ...)" for each worker fleet.each's results list as skipped by fleet.skip.
function M.skipped(results)
  local out = {}
  for _, r in ipairs(results) do
    if r.status == "skipped" and r.error and r.error:find("^skipped: ") then
      out[#out + 1] = r.name .. " (" .. r.error:gsub("^skipped: ", "") .. ")"
    end
  end
  return out
end

return M
