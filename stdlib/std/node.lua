-- std.node: the operations of a Kubernetes node (std.ops): drained, uncordoned. Each asks the API
-- whether the node is already so before changing anything.
local check = require "engine.check"
local k8s = require "engine.k8s"

local M = {}

local DRAIN = { "ignore_daemonsets", "delete_emptydir", "force", "grace_period", "timeout", "retry_interval",
  "poll_interval", "disable_eviction" }

--- drained({k8s.drain's options..., delete_blocked_pods}) → operation "drain": the node cordoned
--- with nothing left to evict. delete_blocked_pods: when PDBs still block the drain at its timeout,
--- delete the pods they hold (bypasses the PDBs; the operator asked for it).
function M.drained(opts)
  local all = { "delete_blocked_pods" }
  for _, k in ipairs(DRAIN) do all[#all + 1] = k end
  opts = check.options(opts, all, "node.drained")
  local drain = {}
  for _, k in ipairs(DRAIN) do drain[k] = opts[k] end
  return {
    name = "drain",
    holds = function(h)
      local plan, err, msg = k8s.drain_plan(h, drain)
      if not plan then return false, msg or err end
      local n = k8s.get("nodes", h.name)
      local cordoned = n and (n.spec or {}).unschedulable == true
      return cordoned and #plan.evict == 0, string.format("%s, %d pods to evict", cordoned and "cordoned" or "schedulable",
        #plan.evict)
    end,
    apply = function(h)
      local res, err, msg = k8s.drain(h, drain)
      if res then return res.evicted end
      if err == "timeout" and opts.delete_blocked_pods then
        log.warn("drain blocked by PDBs: deleting the blocking pods (delete_blocked_pods)", { node = h.name, why = msg })
        local again = {}
        for k, v in pairs(drain) do again[k] = v end
        again.disable_eviction = true
        res, err, msg = k8s.drain(h, again)
        if res then return res.evicted end
      end
      error(string.format("%s: %s", h.name, msg or err), 0)
    end,
  }
end

--- uncordoned() → operation "uncordon": the node schedulable again (only if this run cordoned
--- it: one an operator cordoned stays theirs, and the operation fails saying so).
function M.uncordoned()
  return {
    name = "uncordon",
    holds = function(h)
      local n, err, msg = k8s.get("nodes", h.name)
      if not n then return false, msg or err end
      if k8s.would_be_cordoned(h) then return false, "cordoned by this dry run" end
      return (n.spec or {}).unschedulable ~= true, "cordoned"
    end,
    apply = function(h)
      local ok, err, msg = k8s.uncordon(h)
      if not ok then error(string.format("%s: %s", h.name, msg or err), 0) end
    end,
  }
end

return M
