-- etcd's disaster recovery: every member made again from one snapshot, when a quorum is lost for
-- good (two of three members' data gone, a one-node control plane's only member). Kubernetes'
-- procedure for kubeadm: a precheck that changes nothing (each node's member, its configuration and
-- a restore tool; refused while etcd still has a quorum), the snapshot copied to every node and
-- read back there, the API servers stopped, every member stopped, restored aside and swapped in
-- (the old data kept), all started at once, the API servers back, the controller-manager, the
-- scheduler and the kubelets restarted. It takes no Lease: the API that would hold one is what is down.
--   engine run runbooks/etcd-restore.lua -e snapshot=/var/backups/engine/etcd-....db
local etcd = require "engine.etcd"
local fleet = require "engine.fleet"
local http = require "engine.http"
local kubeadm = require "std.kubeadm"
local nodes = require "etcd_nodes"
local ops = require "std.ops"
local replace = require "etcd_replace"
local restore = require "etcd_restore"
local static_pod = require "std.static_pod"
local text = require "std.text"

local function rerun() return false end

return runbook {
  name = "etcd-restore",
  summary = "Restore every etcd member from a snapshot when the quorum is lost: API servers stopped, members restored, all back",
  params = {
    snapshot = { type = "string", required = true, pattern = "^/",
      help = "the snapshot on this machine (one the engine took, in /var/backups/engine, or etcdctl snapshot save's)" },
    health_timeout = nodes.PARAMS.health_timeout, health_passes = nodes.PARAMS.health_passes,
    health_interval = nodes.PARAMS.health_interval, max_raft_lag = nodes.PARAMS.max_raft_lag,
    control_plane = { type = "string", default = "k8s-cp",
      help = "inventory group of the etcd members: every one is restored, and the restored cluster is exactly them" },
    drop_members = { type = "boolean", default = false,
      help = "restore without the old cluster's members outside control_plane (their nodes gone for good): the restored cluster does not have them" },
    manifest = { type = "string", default = "",
      help = "a member whose etcd.yaml is gone (moved out by hand): its copy on the node, restored with and put in place (the copy stays)" },
    force = { type = "boolean", default = false,
      help = "restore while etcd still has a quorum (every write since the snapshot is lost)" },
    etcd_prefix = { type = "string", default = "/registry", pattern = "^/",
      help = "the API servers' --etcd-prefix: with a quorum, whether etcd holds the cluster's objects (kubeadm-config) is read there" },
    restart_components = { type = "boolean", default = true,
      help = "restart kube-controller-manager and kube-scheduler once the API is back (Kubernetes' advice: no cache of the lost state)" },
    restart_kubelets = { type = "boolean", default = true,
      help = "restart the kubelets of `nodes` once the API is back, kubelets_at_once at a time, each waited for Ready (Kubernetes' advice: none goes on from the lost state)" },
    nodes = { type = "string", default = "all", help = "inventory pattern of the nodes whose kubelet is restarted" },
    kubelets_at_once = { type = "amount", default = "25%", pattern = "^0*[1-9]%d*%%?$",
      help = "kubelets restarted at once: a count from 1, or a percentage of the nodes" },
    backup_dir = { type = "string", default = "/etc/kubernetes/engine-backup", pattern = "^/",
      help = "where the static Pods' manifests are parked while the members are restored (0700)" },
  },
  ---@param p params.etcd_restore
  ---@param inv engine.Inventory
  run = function(p, inv)
    local cps = inv:hosts(p.control_plane)
    if #cps == 0 then fail("inventory group %s has no hosts", p.control_plane) end
    local hidden = inv:hidden(p.control_plane)
    local facts = step("precheck", function() return restore.precheck(p, cps, hidden) end, { probe = rerun })
    log.info("precheck passed", { members = #cps, healthy = facts.healthy, initial_cluster = facts.initial_cluster })
    if #(facts.dropped or {}) > 0 then
      log.warn("members of the old cluster left out of the restored one (drop_members)", { members = table.concat(facts.dropped, ", ") })
    end
    local stamp = step("stamp", function() return os.date("!%Y%m%dT%H%M%SZ") end)
    local token = "engine-restore-" .. stamp:lower()
    local all = { at_once = #cps }

    -- Nothing is stopped until every node holds the snapshot and its own tool can read it.
    local copies = {}
    fleet.each(cps, all, function(h)
      copies[h.name] = step("snapshot copied", function() return restore.copy(p, h, facts.members[h.name], stamp, facts.snapshot.sha256) end)
    end)
    local revision
    for _, c in pairs(copies) do revision = revision or c.revision end
    if revision then log.info("the snapshot is on every node", { revision = revision, path = p.snapshot }) end

    fleet.each(cps, all, function(h) ops.step(h, restore.apiserver_stopped(p)) end)
    fleet.each(cps, all, function(h)
      local m = facts.members[h.name]
      ops.step(h, replace.stopped(p, { how = { kind = m.kind } }, restore.parked(p, "etcd")))
      if m.copy then ops.step(h, restore.copied(p, m)) end
      ops.step(h, restore.restored(p, facts, m, stamp, token))
    end)
    fleet.each(cps, all, function(h) ops.step(h, restore.started(p, facts.members[h.name])) end)
    step("etcd cluster", function()
      if http.dry_run() then return end
      local health = etcd.cluster_health(nodes.endpoints(cps, p))
      if not health or not health.healthy then error("etcd after the restore: " .. (health and nodes.said(health) or "cannot ask"), 0) end
      if #health.members ~= #cps then
        error(string.format("etcd after the restore has %d members, not the %d restored", #health.members, #cps), 0)
      end
    end, { probe = rerun })
    fleet.each(cps, { at_once = 1 }, function(h) ops.step(h, restore.apiserver_started(p)) end)
    if p.restart_components then
      fleet.each(cps, { at_once = 1 }, function(h)
        for _, c in ipairs({ "kube-controller-manager", "kube-scheduler" }) do
          step("restart " .. c, function()
            local r, why = static_pod.restart(h, c, { parking = p.backup_dir, timeout = p.health_timeout })
            if not r then error(string.format("%s: restarting %s: %s", h.name, c, tostring(why)), 0) end
          end)
        end
      end)
    end
    if p.restart_kubelets then
      fleet.each(inv:hosts(p.nodes), { at_once = p.kubelets_at_once }, function(h)
        step("restart kubelet", function() kubeadm.restart_kubelet_ready(h, { timeout = p.health_timeout }) end)
      end)
    end

    local lines = { { "NODE", "MEMBER", "ID", "HEALTH", "OLD DATA" } }
    local health = not http.dry_run() and etcd.cluster_health(nodes.endpoints(cps, p))
    local by_name = {}
    for _, m in ipairs(health and health.members or {}) do by_name[m.name] = m end
    for _, h in ipairs(cps) do
      local m = facts.members[h.name]
      local got = by_name[m.member] or {}
      lines[#lines + 1] = { h.name, m.member, got.id or "?", got.healthy and "healthy" or (http.dry_run() and "-" or "unhealthy"),
        not http.dry_run() and restore.kept(h, m, stamp) or "-" }
    end
    print(http.dry_run() and "\nDry run: nothing was changed." or
      string.format("\netcd restored from %s (revision %s) as a new cluster of %d members; the API answers again:\n%s",
        p.snapshot, tostring(revision or "?"), #cps, text.columns(lines)))
  end,
}
