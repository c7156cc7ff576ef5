-- Recovery of an etcd member whose data is lost (a disk replaced, a data directory wiped): its etcd
-- exits with "member ... has already been bootstrapped" and the cluster runs one member short.
-- etcd's procedure for a failed member, on a stacked member (kubeadm's static Pod) or one under
-- systemd: a precheck that changes nothing (the others a quorum without it, the member found by
-- name, its configuration there, or written from a peer's with -e manifest_from=PEER when its
-- etcd.yaml went with its data), a snapshot first, then stop it, remove it, keep its old data
-- aside, add it again and start it as an existing member; the gate on its new ID.
--   engine run runbooks/etcd-member-replace.lua -e node=cp3
local etcd = require "engine.etcd"
local groups = require "std.groups"
local http = require "engine.http"
local nodes = require "etcd_nodes"
local ops = require "std.ops"
local replace = require "etcd_replace"
local text = require "std.text"

local function rerun() return false end

return runbook {
  name = "etcd-member-replace",
  summary = "Replace an etcd member whose data is lost: removed, added again, started empty as an existing member",
  params = {
    node = { type = "string", required = true, help = "the inventory host whose etcd member is replaced" },
    -- The gate's, as every etcd runbook has them (not the release's: nothing is downloaded here).
    health_timeout = nodes.PARAMS.health_timeout, health_passes = nodes.PARAMS.health_passes,
    health_interval = nodes.PARAMS.health_interval, max_raft_lag = nodes.PARAMS.max_raft_lag,
    control_plane = { type = "string", default = "k8s-cp", help = "inventory group of the etcd members" },
    leader = { type = "string", default = "k8s-cp-leader",
      help = "inventory group of the node the snapshot is taken through (another node when it is the one replaced)" },
    force = { type = "boolean", default = false, help = "replace a member that answers, healthy (its data is not trusted)" },
    manifest_from = { type = "string", default = "",
      help = "the node's etcd.yaml gone with its data and no copy left: write it from this control-plane node's, its member's name and addresses made the replaced member's" },
    backup_dir = { type = "string", default = "/etc/kubernetes/engine-backup", pattern = "^/",
      help = "where the static Pod's manifest is parked while the member is replaced (0700)" },
    snapshot_dir = { type = "string", default = "/var/backups/engine", help = "where the snapshot is kept (on this machine)" },
    snapshot_keep = { type = "integer", min = 0, default = 0,
      help = "once the snapshot is kept, remove older etcd-*.db snapshots in snapshot_dir beyond this many; 0 keeps every one" },
  },
  ---@param p params.etcd_member_replace
  ---@param inv engine.Inventory
  run = function(p, inv)
    local cps = nodes.control_plane(inv, p, "the replacement counts the other members' health and a quorum before it " ..
      "removes one, and it changes only the node -e node= names")
    nodes.api(cps)  -- the route to the API through a node when only that answers (seed 002)
    local h
    for _, x in ipairs(cps) do if x.name == p.node then h = x end end
    if not h then fail("node=%s is not in %s (%d hosts)", p.node, p.control_plane, #cps) end

    local facts = step("precheck", function() return replace.precheck(p, cps, h) end, { probe = rerun })
    log.info("precheck passed", { node = h.name, member = facts.member.id, how = facts.how.kind, data_dir = facts.data_dir,
      healthy_others = facts.healthy, members = facts.members })
    local others, eps = {}, {}
    for _, name in ipairs(facts.others) do
      others[#others + 1] = inv:host(name)
      eps[#eps + 1] = nodes.endpoint(others[#others], p)
    end
    local lease = nodes.lease()
    local through = groups.optional(inv, p.leader, "k8s-cp-leader")[1]
    if not through or through.name == h.name then through = others[1] end
    local snap = step("etcd snapshot", function() return nodes.snapshot(p, through) end, { probe = rerun })
    nodes.kept(snap)

    local stamp = step("stamp", function() return os.date("!%Y%m%dT%H%M%SZ") end)
    if facts.how.text then ops.step(h, replace.written(p, facts)) end
    ops.step(h, replace.stopped(p, facts))
    ops.step(nil, replace.removed(facts, eps, p.health_timeout))
    ops.step(h, replace.data_aside(facts, stamp))
    local joined = step("member added", function() return replace.added(facts, eps, p.health_timeout) end)
    ops.step(h, replace.started(p, facts, joined))

    step("postcheck", function()
      if http.dry_run() then return end
      local health = etcd.cluster_health(nodes.endpoints(cps, p))
      if not health or not health.healthy then
        error("postcheck: etcd: " .. (health and nodes.said(health) or "cannot ask"), 0)
      end
    end, { probe = rerun })
    if lease then lease:release() end
    local lines = { { "MEMBER", "ID", "HEALTH" } }
    local health = not http.dry_run() and etcd.cluster_health(nodes.endpoints(cps, p))
    for _, m in ipairs(health and health.members or {}) do
      lines[#lines + 1] = { m.name, m.id, m.healthy and "healthy" or ("unhealthy: " .. tostring(m.error)) }
    end
    print(http.dry_run() and "\nDry run: nothing was changed." or
      string.format("\n%s's member was %s, is now %s; what was left of its data is in %s:\n%s", facts.member.name,
        facts.member.id, joined.id, replace.aside(facts.data_dir, stamp), text.columns(lines)))
  end,
}
