-- The flags that bootstrap a stacked etcd member, made safe (etcd-maintenance.lua mode=manifests).
-- kubeadm writes each member's etcd.yaml with --initial-cluster naming that member alone and
-- --initial-cluster-state new: at init, and as kubespray#13261 reads its upgrade path, at every
-- upgrade. etcd reads these flags only when its data directory is empty, so they do nothing while
-- the member has its data; once it is lost, the member bootstraps a new, empty one-member cluster
-- with the same member ID, healthy, and the node's API server reads and writes it (doctor's
-- etcd-forked). With every member listed and --initial-cluster-state existing, a member that lost
-- its data fails to start instead (it asks its peers and is refused), and etcd-member-replace
-- brings it back. Changing the manifest restarts the member: one node at a time, the leader last,
-- each one's new container waited for and then its member healthy before the next.
local etcd = require "engine.etcd"
local fleet = require "engine.fleet"
local http = require "engine.http"
local nodes = require "etcd_nodes"
local ops = require "std.ops"
local remote = require "std.remote"
local replace = require "etcd_replace"
local static_pod = require "std.static_pod"
local svc = require "std.etcd_service"

local M = {}

--- members_named(initial_cluster) → how many members "a=https://..,b=https://.." names.
function M.members_named(ic)
  local seen, n = {}, 0
  for part in tostring(ic or ""):gmatch("[^,]+") do
    local name = part:match("^([^=]+)=")
    if name and not seen[name] then seen[name], n = true, n + 1 end
  end
  return n
end

--- fork_risk(flags, members) → the sentence that says why, or nil: a member's flags that would
--- start a new cluster if its data were lost, in a cluster of `members` (more than one).
function M.fork_risk(flags, members)
  if not flags or (members or 0) < 2 then return nil end
  local ic, state = flags["initial-cluster"], flags["initial-cluster-state"] or "new"
  if state == "existing" or not ic or M.members_named(ic) > 1 then return nil end
  return string.format("--initial-cluster names this member alone (%s) with --initial-cluster-state %s, as kubeadm writes " ..
    "it at init and at upgrades: if this member's data is lost, it starts a new, empty cluster of its own instead of " ..
    "failing, and this node's API server reads and writes that (kubespray#13261)", ic, state)
end

-- The node's clock, to the nanosecond: the restart probe compares container creation times with it.
local function node_now(h)
  local r = remote.must(h, "date +%s.%N", { read_only = true, what = "the node's clock" })
  return tonumber(r.stdout:match("[%d.]+")) or 0
end

--- harden(p, cps): every static Pod member's etcd.yaml with --initial-cluster listing every member
--- and --initial-cluster-state existing; a precheck first (every member healthy, each node's etcd
--- a static Pod with its data), then one node at a time, the leader last. Idempotent: a manifest
--- already so is left alone (the member is still asked to be healthy).
function M.harden(p, cps)
  local eps = nodes.endpoints(cps, p)
  local ids, leader = {}, nil
  local plan = step("precheck", function()
    local bad = {}
    local health, herr, hmsg = etcd.cluster_health(eps)
    if not health then error("precheck failed, nothing was changed: etcd's health: " .. tostring(hmsg or herr), 0) end
    -- Each change restarts a member: the others must hold a quorum meanwhile.
    for _, problem in ipairs(health.problems) do bad[#bad + 1] = "etcd: " .. problem:gsub("%s*\n%s*", " ") end
    if not health.healthy and #health.problems == 0 then bad[#bad + 1] = "etcd is not healthy" end
    local members, merr, mmsg = etcd.members(eps[1])
    if not members then error("precheck failed, nothing was changed: etcd's members: " .. tostring(mmsg or merr), 0) end
    local want = replace.initial_cluster(members, nil, {})
    if M.members_named(want) ~= #members then
      bad[#bad + 1] = "a member has no name yet (added, never started): bring it up first (etcdctl member list)"
    end
    local out = { initial_cluster = want, members = #members, nodes = {} }
    for i, h in ipairs(cps) do
      local where = nodes.where(h)
      local st = etcd.status(eps[i])
      if where ~= "static" then
        bad[#bad + 1] = string.format("%s: etcd runs as %s here, not kubeadm's static Pod; this mode changes etcd.yaml only", h.name, where)
      elseif not st then
        bad[#bad + 1] = h.name .. ": its member does not answer"
      else
        out.nodes[h.name] = { id = st.member_id, leader = st.leader == st.member_id }
      end
    end
    if #bad > 0 then error("precheck failed, nothing was changed:\n  " .. table.concat(bad, "\n  "), 0) end
    return out
  end, { probe = function() return false end })
  for name, n in pairs(plan.nodes) do
    ids[name] = n.id
    if n.leader then leader = name end
  end
  local set = { ["initial-cluster"] = plan.initial_cluster, ["initial-cluster-state"] = "existing" }
  local order = {}
  for _, h in ipairs(cps) do if h.name ~= leader then order[#order + 1] = h end end
  for _, h in ipairs(cps) do if h.name == leader then order[#order + 1] = h end end

  local lease = nodes.lease()
  local before = {}
  fleet.each(order, { at_once = 1 }, function(h)
    before[h.name] = (svc.manifest(h) or {}).flags or {}
    ops.step(h, {
      name = "etcd.yaml names every member",
      holds = function(x)
        local f = (svc.manifest(x) or {}).flags or {}
        if f["initial-cluster"] ~= set["initial-cluster"] or f["initial-cluster-state"] ~= "existing" then
          return false, "--initial-cluster=" .. tostring(f["initial-cluster"]) .. " --initial-cluster-state=" ..
            tostring(f["initial-cluster-state"] or "new")
        end
        -- Written, and the member back: a run killed between the two finds it so on resume.
        local st, why = nodes.member_ok(x, p, ids[x.name])
        return st ~= nil, why
      end,
      apply = function(x)
        if http.dry_run() then
          log.info("dry-run: would set etcd's --initial-cluster to every member and --initial-cluster-state=existing, " ..
            "restarting it", { node = x.name, initial_cluster = set["initial-cluster"] })
          return
        end
        local r = remote.must(x, "cat " .. remote.quote(svc.MANIFEST), { read_only = true, what = "reading " .. svc.MANIFEST })
        local since = node_now(x)
        local ok, err, msg = x:write_file(svc.MANIFEST, replace.with_flags(r.stdout, set), { mode = "0600", sudo = true })
        if not ok then error(string.format("%s: writing %s: %s (%s)", x.name, svc.MANIFEST, err, msg or ""), 0) end
        -- The kubelet restarts the member for its new manifest: until its new container runs, the
        -- old one still answers, and the gate would pass on it.
        if not static_pod.new_container(x, "etcd", since, p.health_timeout) then
          error(string.format("%s: the kubelet did not restart etcd for its new manifest within %ds (crictl ps -a " ..
            "--name etcd; journalctl -u kubelet)", x.name, p.health_timeout), 0)
        end
        local up, why = nodes.gate(function() return nodes.member_ok(x, p, ids[x.name]) end, p.health_passes,
          p.health_interval, p.health_timeout)
        if not up then error(string.format("%s: member %s after its restart: %s (crictl logs on etcd)", x.name, ids[x.name],
          tostring(why)), 0) end
        log.info("etcd restarted with every member in its manifest", { node = x.name })
      end,
    })
  end)
  if lease then lease:release() end
  return plan, before
end

return M
