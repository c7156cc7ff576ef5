-- etcd from kubeadm's static Pod to systemd, on a running cluster (seed 003, flow A): a precheck
-- that changes nothing, a verified snapshot, the service installed and enabled on every
-- control-plane node without starting it, then one node at a time (the etcd leader last) the
-- manifest moved out, the old etcd gone from the data directory, the same member started under
-- systemd and gated; a node that fails is rolled back to its static Pod and the run stops there.
-- Then kubeadm learns the external etcd: the ClusterConfiguration with every field kept, uploaded
-- from the leader, and each API server's manifest regenerated one node at a time.
-- Every phase is a journaled step: `engine resume RUN` continues a stopped run.
local etcd = require "engine.etcd"
local fleet = require "engine.fleet"
local http = require "engine.http"
local ops = require "std.ops"
local svc = require "std.etcd_service"
local systemd = require "std.systemd"
local nodes = require "etcd_nodes"
local mig = require "etcd_migration"
local groups = require "std.groups"
local semver = require "std.semver"
local text = require "std.text"

local function rerun() return false end

local function report(cps, p)
  local lines = { { "NODE", "MEMBER", "ETCD", "MANIFEST", "HEALTH" } }
  for _, h in ipairs(cps) do
    local ok1, st = pcall(systemd.state, h, svc.UNIT)
    local ok2, m = pcall(svc.manifest, h)
    local ok3, member, why = pcall(mig.member_ok, h, p)
    lines[#lines + 1] = { h.name, mig.member_name(h), ok1 and ("systemd " .. st) or "?",
      ok2 and (m and "present" or "moved") or "?", ok3 and (member and "healthy" or tostring(why)) or "?" }
  end
  print(text.columns(lines))
end

return runbook {
  name = "etcd-to-systemd",
  summary = "Move a kubeadm cluster's stacked etcd from static Pods to systemd, one member at a time, with rollback",
  params = nodes.params {
    version = { type = "string", pattern = "^v?%d+%.%d+%.%d+$",
      help = "etcd version to install (default: what the members run; migration does not upgrade)" },
    control_plane = { type = "string", default = "k8s-cp", help = "inventory group of the control-plane nodes (the etcd members)" },
    leader = { type = "string", default = "k8s-cp-leader", help = "inventory group whose host uploads kubeadm-config (an inventory without the group: the first control-plane host)" },
    snapshot_dir = { type = "string", default = "/var/backups/engine", help = "where the snapshot is kept (on this machine)" },
    snapshot_keep = { type = "integer", min = 0, default = 0,
      help = "once the snapshot is kept, remove older etcd-*.db snapshots in snapshot_dir beyond this many (the new one counts); 0 keeps every one" },
    backup_dir = { type = "string", default = "/etc/kubernetes/engine-backup",
      help = "on each node, where the etcd and kube-apiserver manifests are kept (outside manifests/)" },
    user = { type = "string", default = "etcd", pattern = "^[a-z_][a-z0-9_%-]*$", help = "the service's user and group (a system user)" },
    min_free_mb = { type = "integer", min = 0, default = 1024, help = "free MiB each node needs where etcd's data is" },
    stop_timeout = { type = "duration", default = "2m", help = "for the static Pod's etcd to let go of the data directory" },
    kubeadm_config = { type = "string", default = "/etc/kubernetes/engine-external-etcd.yaml",
      help = "on the nodes, the kubeadm config written for upload-config and the apiserver phase" },
    reconfigure_kubeadm = { type = "boolean", default = true,
      help = "point kubeadm-config and every kube-apiserver at the external etcd" },
  },
  ---@param p params.etcd_to_systemd
  ---@param inv engine.Inventory
  run = function(p, inv)
    if p.version then p.version = semver.format(p.version) end  -- etcd tags its releases v3.5.16
    local cps = nodes.control_plane(inv, p, "a member moves only while every other member is healthy, checked through each one's node")
    nodes.api(cps)  -- the route to the API through a node when only that answers (seed 002)
    local leader = groups.optional(inv, p.leader, "k8s-cp-leader")[1] or cps[1]
    p.download_url = p.download_url or leader.vars.etcd_download_url or svc.DOWNLOAD_URL
    if not p.download_url:find("{version}", 1, true) and not p.version then
      fail("download_url %s has no {version} and no version= was given", p.download_url)
    end

    local ok, err = pcall(function()
      -- 1. Precheck: read only; a failure names every problem and nothing has changed.
      local facts = step("precheck", function() return mig.precheck(p, cps, leader) end, { probe = rerun })
      log.info("precheck passed", { version = facts.version, etcd_leader = facts.leader, sha256 = facts.sha256 })
      mig.endpoints(cps, p)  -- a tunnel to every member (again, on resume)
      -- One etcd runbook at a time on a cluster; held until the run ends (a lost lease stops it).
      local lease = nodes.lease()
      local snap = step("etcd snapshot", function() return mig.snapshot(p, leader) end, { probe = rerun })
      mig.kept(snap)

      -- 2. Install on every node, nothing that runs changed: binaries, user, keys readable, the
      -- environment from the node's own manifest, the unit, enabled and not started (decision 9).
      local cluster = {}
      for _, h in ipairs(cps) do
        cluster[#cluster + 1] = mig.member_name(h) .. "=" .. facts.nodes[h.name].flags["initial-advertise-peer-urls"]
      end
      fleet.each(cps, { at_once = #cps }, function(h)
        local n = facts.nodes[h.name]
        ops.step(h, svc.release(facts.version, { url = p.download_url, sha256 = facts.sha256 }))
        ops.step(h, svc.user(p.user))
        ops.step(h, svc.keys_readable(mig.KEYS, p.user))
        ops.step(h, systemd.file(svc.ENV_FILE, svc.env_text(n.flags, n.order, {
          ["initial-cluster-state"] = "existing", ["initial-cluster"] = table.concat(cluster, ",") }),
          { name = "etcd environment " .. svc.ENV_FILE }))
        ops.step(h, systemd.unit(svc.UNIT, svc.unit_text { user = p.user }))
        ops.step(h, systemd.enabled(svc.UNIT))
      end)

      -- 3. One node at a time, the etcd leader last: moved, gated, or rolled back and stopped.
      local order = {}
      for _, h in ipairs(cps) do if mig.member_name(h) ~= facts.leader then order[#order + 1] = h end end
      table.sort(order, function(a, b) return a.name < b.name end)
      for _, h in ipairs(cps) do if mig.member_name(h) == facts.leader then order[#order + 1] = h end end
      fleet.each(order, { at_once = 1 }, function(h) ops.step(h, mig.migrated(p, facts)) end)

      -- 4. kubeadm: kubeadm-config from the leader only, then each API server, one at a time.
      if p.reconfigure_kubeadm then
        ops.step(leader, mig.uploaded(p, cps))
        fleet.each(cps, { at_once = 1 }, function(h) ops.step(h, mig.apiserver_external(p, cps)) end)
      end

      -- 5. Postcheck.
      step("postcheck", function()
        if http.dry_run() then return end
        local bad = {}
        for _, h in ipairs(cps) do
          if svc.manifest(h) then bad[#bad + 1] = h.name .. ": " .. svc.MANIFEST .. " is back" end
          local active, why = systemd.active(h, svc.UNIT)
          if not active then bad[#bad + 1] = h.name .. ": " .. why end
          local enabled, ewhy = systemd.is_enabled(h, svc.UNIT)
          if not enabled then bad[#bad + 1] = h.name .. ": " .. ewhy end
          if p.reconfigure_kubeadm and not mig.apiserver_external(p, cps).holds(h) then
            bad[#bad + 1] = h.name .. ": kube-apiserver does not use the external etcd"
          end
        end
        local health = etcd.cluster_health(etcd.endpoints())
        if not health or not health.healthy then
          bad[#bad + 1] = "etcd: " .. (health and nodes.said(health) or "cannot ask")
        end
        if p.reconfigure_kubeadm then
          if not mig.uploaded(p, cps).holds() then bad[#bad + 1] = "kubeadm-config does not name the external etcd" end
          local r = leader:exec("kubeadm upgrade plan", { sudo = true, read_only = true, timeout = 300 })
          if not r or r.code ~= 0 then
            bad[#bad + 1] = leader.name .. ": kubeadm upgrade plan fails: " .. (r and (r.stderr ~= "" and r.stderr or r.stdout) or "no answer")
          end
        end
        if #bad > 0 then error("postcheck: " .. table.concat(bad, "; "), 0) end
      end, { probe = rerun })
      if lease then lease:release() end
    end)
    if not ok then
      log.error("etcd migration stopped", { error = tostring(err) })
      print("\nThe migration of etcd to systemd stopped: " .. tostring(err) .. "\n")
      pcall(report, cps, p)
      error(err, 0)
    end
    print(http.dry_run() and "\nDry run: nothing was changed. The members as they are:" or
      "\nEvery etcd member runs under systemd; kubeadm and the API servers use it as an external etcd:")
    report(cps, p)
  end,
}
