-- The worker rollout of k8s-upgrade.lua beyond fleet.each's window: the next workers tainted
-- PreferNoSchedule while the current ones drain (evicted pods should not land on a node that is
-- drained next: k0sctl#537's pods bounced from node to node; kOps taints every node its rolling
-- update will replace, at the start: only the next window here, so that early in a rollout the
-- evicted pods are not steered onto the few nodes already done), and
-- unreachable workers skipped when the operator allows it (k0sctl#1118: one dead node should not
-- stop a 500-node rollout).
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

--- Taints PreferNoSchedule the `count` workers after h (in rollout order) that have not started.
--- Steering only: a taint that cannot be put is a warning, not a stop.
function M.taint_next(workers, started, h, count)
  local after, n = false, 0
  for _, w in ipairs(workers) do
    if w == h then
      after = true
    elseif after and not started[w.name] and n < count then
      local ok, err, msg = k8s.taint(w.name, M.TAINT, "PreferNoSchedule")
      if not ok then log.warn("could not taint the next worker", { node = w.name, error = msg or err }) end
      n = n + 1
    end
  end
end

--- Removes this run's taint from the host (done with it), or from every worker (the rollout ended,
--- however it ended): none is left behind.
function M.untaint(hosts)
  for _, w in ipairs(hosts) do
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
