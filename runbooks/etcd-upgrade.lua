-- Rolling etcd upgrade of a systemd-managed etcd (after etcd-to-systemd.lua), separate from the
-- Kubernetes upgrade (seed 003, decision 6): a precheck that changes nothing (one minor at a time,
-- no etcd newer than the cluster's Kubernetes runs with, 3.5.20+ before 3.6, quorum), a snapshot
-- first (IR-4), the release fetched and checked on every node, then one member at a time (the
-- unhealthy first, the leader last): new binaries beside the kept old ones, a restart, the gate;
-- a member that fails gets its old binaries back and the run stops there.
--   engine run runbooks/etcd-upgrade.lua -e version=3.5.16
local etcd = require "engine.etcd"
local fleet = require "engine.fleet"
local http = require "engine.http"
local ops = require "std.ops"
local svc = require "std.etcd_service"
local nodes = require "etcd_nodes"
local up = require "etcd_upgrade"
local groups = require "std.groups"
local semver = require "std.semver"
local text = require "std.text"

local function rerun() return false end

local function report(cps)
  local lines = { { "NODE", "MEMBER", "VERSION", "HEALTH" } }
  for _, h in ipairs(cps) do
    local st = etcd.status(nodes.endpoint(h))
    local ok = etcd.health(nodes.endpoint(h))
    lines[#lines + 1] = { h.name, nodes.member_name(h), st and st.version or "?", ok and "healthy" or "unhealthy" }
  end
  print(text.columns(lines))
end

return runbook {
  name = "etcd-upgrade",
  summary = "Upgrade etcd under systemd one member at a time, the leader last, with a snapshot first and rollback",
  params = nodes.params {
    version = { type = "string", required = true, pattern = "^v?%d+%.%d+%.%d+$", help = "target etcd version, e.g. 3.5.16" },
    control_plane = { type = "string", default = "k8s-cp", help = "inventory group of the etcd members" },
    leader = { type = "string", default = "k8s-cp-leader", help = "inventory group of the node the snapshot is taken through (an inventory without the group: the first control-plane host)" },
    snapshot_dir = { type = "string", default = "/var/backups/engine", help = "where the snapshot is kept (on this machine)" },
    snapshot_keep = { type = "integer", min = 0, default = 0,
      help = "once the snapshot is kept, remove older etcd-*.db snapshots in snapshot_dir beyond this many (the new one counts); 0 keeps every one" },
  },
  ---@param p params.etcd_upgrade
  ---@param inv engine.Inventory
  run = function(p, inv)
    p.version = semver.format(p.version)  -- etcd tags its releases v3.5.16; its binaries say 3.5.16
    local cps = nodes.control_plane(inv, p, "a member is upgraded only while every other member is healthy, checked through each one's node")
    nodes.api(cps)  -- the route to the API through a node when only that answers (seed 002)
    local leader = groups.optional(inv, p.leader, "k8s-cp-leader")[1] or cps[1]
    p.download_url = p.download_url or leader.vars.etcd_download_url or svc.DOWNLOAD_URL

    local ok, err = pcall(function()
      local facts = step("precheck", function() return up.precheck(p, cps) end, { probe = rerun })
      log.info("precheck passed", { target = p.version, running = facts.versions, kubernetes = facts.kubernetes,
        etcd_leader = facts.leader, unhealthy = facts.unhealthy })
      nodes.endpoints(cps)  -- a tunnel to every member (again, on resume)
      local lease = nodes.lease()
      local snap = step("etcd snapshot", function() return nodes.snapshot(p, leader) end, { probe = rerun })
      nodes.kept(snap)
      fleet.each(cps, { at_once = #cps }, function(h) ops.step(h, up.staged(p, facts)) end)
      fleet.each(up.order(cps, facts), { at_once = 1 }, function(h) ops.step(h, up.upgraded(p, facts)) end)
      step("postcheck", function()
        if http.dry_run() then return end
        local health = etcd.cluster_health(etcd.endpoints())
        local bad = {}
        if not health or not health.healthy then
          bad[#bad + 1] = "etcd: " .. (health and nodes.said(health) or "cannot ask")
        end
        for _, h in ipairs(cps) do
          local st = etcd.status(nodes.endpoint(h))
          if not st or st.version ~= p.version then
            bad[#bad + 1] = h.name .. " runs " .. tostring(st and st.version)
          end
        end
        if #bad > 0 then error("postcheck: " .. table.concat(bad, "; "), 0) end
      end, { probe = rerun })
      if lease then lease:release() end
    end)
    if not ok then
      log.error("etcd upgrade stopped", { error = tostring(err) })
      print("\nThe etcd upgrade to " .. p.version .. " stopped: " .. tostring(err) .. "\n")
      pcall(report, cps)
      error(err, 0)
    end
    print(http.dry_run() and "\nDry run: nothing was changed. The members as they are:" or
      ("\nEvery etcd member runs " .. p.version .. ":"))
    report(cps)
  end,
}
