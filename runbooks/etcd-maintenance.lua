-- etcd maintenance (seed 003's operating tasks after the move to systemd).
--   mode=install (default): on every control-plane node a systemd timer that checks the node's own
--     member, and only it (IR-3), and defragments it when its database is fragmented past a
--     threshold (compacting first if asked). The timers are staggered so no two members are
--     defragmented at once; the run checks every timer is active and when each fires next.
--   mode=defrag: now, the whole cluster, one member at a time, every member healthy before each,
--     the leader last (compacting first if asked). Under a NOSPACE alarm (a database at its quota:
--     "etcdserver: mvcc: database space exceeded", every write refused) it is etcd's own remedy:
--     compact, defragment, then disarm the alarm once every member is under its quota.
--   mode=snapshot: a verified snapshot now, through the leader group's node, kept on this machine
--     (snapshot_dir, the older ones beyond snapshot_keep removed): what etcd-restore.lua restores.
--   mode=manifests: every static Pod member's etcd.yaml with --initial-cluster listing every member
--     and --initial-cluster-state existing, one member restarted at a time, the leader last: a
--     member that loses its data then fails to start instead of founding a new, empty cluster
--     (kubespray#13261; doctor's etcd-fork-risk). kubeadm writes the flags back at each upgrade.
local etcd = require "engine.etcd"
local fleet = require "engine.fleet"
local groups = require "std.groups"
local http = require "engine.http"
local ops = require "std.ops"
local svc = require "std.etcd_service"
local systemd = require "std.systemd"
local nodes = require "etcd_nodes"
local maint = require "etcd_maintenance"
local manifest_flags = require "etcd_manifest_flags"
local text = require "std.text"

local function rerun() return false end

local member_flags, quota_of = nodes.flags, nodes.quota

local function mib(bytes) return bytes and string.format("%.1f MiB", bytes / 1048576) or "?" end

-- Compacts etcd's history to the current revision less keep (the API server does it every five
-- minutes, but not under a NOSPACE alarm: its own compaction writes a key). Compaction is
-- cluster-wide; a revision compacted already is no error.
local function compact(ep, keep)
  local st, err, msg = etcd.status(ep)
  if not st then error("compaction: cannot read the revision: " .. tostring(msg or err), 0) end
  local to = st.revision - keep
  if to < 1 then
    log.info("nothing to compact: fewer revisions than compact_keep", { revision = st.revision, keep = keep })
    return
  end
  local ok, cerr, cmsg = etcd.compact(to)
  if not ok and tostring(cmsg):find("required revision has been compacted", 1, true) then
    log.info("already compacted to this revision or later", { revision = to })
  elseif not ok then
    error("compaction to revision " .. to .. " failed: " .. tostring(cmsg or cerr), 0)
  elseif not http.dry_run() then
    log.info("compacted", { revision = to, kept = keep })
  end
end

return runbook {
  name = "etcd-maintenance",
  summary = "etcd defragmentation: a staggered per-node systemd timer (its own member only), or the whole cluster now",
  params = {
    mode = { type = "enum", values = { "install", "defrag", "snapshot", "manifests" }, default = "install",
      help = "install the timers, defragment every member now (one at a time, the leader last), take a snapshot now, " ..
        "or make every static Pod member's etcd.yaml list every member (one restart each, the leader last)" },
    snapshot_dir = { type = "string", default = "/var/backups/engine", help = "snapshot mode: where the snapshot is kept (on this machine)" },
    snapshot_keep = { type = "integer", min = 0, default = 0,
      help = "snapshot mode: once it is kept, remove older etcd-*.db snapshots in snapshot_dir beyond this many; 0 keeps every one" },
    leader = { type = "string", default = "k8s-cp-leader",
      help = "snapshot mode: inventory group of the node the snapshot is taken through (an inventory without it: the first member)" },
    at = { type = "time", default = "03:00", help = "the first node's daily check, HH:MM[:SS]" },
    stagger = { type = "duration", default = "20m", help = "each next node's check this much later" },
    threshold = { type = "integer", min = 0, max = 100, default = 30, help = "percent of the database that is free space before it is defragmented" },
    min_db_mb = { type = "integer", min = 0, default = 64, help = "a database smaller than this many MiB is left alone" },
    compact = { type = "boolean", default = false,
      help = "compact first: the timers before their check, mode=defrag before the defragmentation (the API server compacts every 5 minutes, but not under a NOSPACE alarm)" },
    compact_keep = { type = "integer", min = 0, default = 10000, help = "with compact: revisions kept" },
    control_plane = { type = "string", default = "k8s-cp", help = "inventory group of the etcd members" },
    pause = { type = "duration", default = "5s", help = "defrag mode: pause between members" },
    health_timeout = nodes.PARAMS.health_timeout,
    health_passes = nodes.PARAMS.health_passes,
    health_interval = nodes.PARAMS.health_interval,
    max_raft_lag = nodes.PARAMS.max_raft_lag,
  },
  ---@param p params.etcd_maintenance
  ---@param inv engine.Inventory
  run = function(p, inv)
    local cps = inv:hosts(p.control_plane)
    if #cps == 0 then fail("inventory group %s has no hosts", p.control_plane) end
    if p.mode == "defrag" then  -- a snapshot needs one member; a defragmentation every one
      nodes.control_plane(inv, p, "a defragmentation goes through every member, and NOSPACE is disarmed only once each " ..
        "is under its quota")
    elseif p.mode == "manifests" then
      nodes.control_plane(inv, p, "every member's manifest is to list every member")
    end
    nodes.api(cps)  -- the route to the API through a node when only that answers (seed 002)
    table.sort(cps, function(a, b) return a.name < b.name end)

    if p.mode == "snapshot" then
      local through = groups.optional(inv, p.leader, "k8s-cp-leader")[1] or cps[1]
      local snap = step("etcd snapshot", function() return nodes.snapshot(p, through) end, { probe = rerun })
      nodes.kept(snap)
      if not http.dry_run() then
        print(string.format("\netcd snapshot of revision %s through %s: %s (%s, sha256 %s)", tostring(snap.revision), through.name,
          snap.path, mib(snap.size), snap.sha256))
      end
      return
    end

    if p.mode == "manifests" then
      local plan, before = manifest_flags.harden(p, cps)
      local lines = { { "NODE", "INITIAL-CLUSTER BEFORE", "STATE BEFORE", "NOW" } }
      for _, h in ipairs(cps) do
        local f = before[h.name] or {}
        lines[#lines + 1] = { h.name, string.format("%d of %d members", manifest_flags.members_named(f["initial-cluster"]),
          plan.members), f["initial-cluster-state"] or "new", http.dry_run() and "-" or "every member, existing" }
      end
      print(text.columns(lines))
      return
    end

    if p.mode == "defrag" then
      local eps = nodes.endpoints(cps)
      -- A NOSPACE alarm (a member's database reached its quota): etcd refuses every write, the API
      -- server's too, so the cluster's Lease cannot be written; every other engine run is stopped
      -- by the alarm as well. The run goes on without the lease, and disarms the alarm once the
      -- compaction and the defragmentation have brought every member under its quota.
      local alarms, aerr, amsg = etcd.alarms(eps[1])
      if not alarms then fail("cannot read etcd's alarms: %s", tostring(amsg or aerr)) end
      local nospace = {}
      for _, a in ipairs(alarms) do if a.alarm == "NOSPACE" then nospace[#nospace + 1] = a end end
      local lease
      if #nospace > 0 then
        log.warn("etcd's NOSPACE alarm stands: etcd refuses every write, the API server's included; going on without "
          .. "the cluster lease (it cannot be written)", { members = #nospace })
        if not p.compact then
          log.warn("compact=false: a defragmentation gives back only what compaction has freed; -e compact=true "
            .. "compacts first")
        end
      else
        -- The cluster's leases, as every etcd runbook holds them: a defragmentation blocks each
        -- member in turn, which an upgrade's etcd phase (kubeadm's or etcd-upgrade's) must not meet.
        lease = nodes.lease()
      end
      local before, name_of = {}, {}
      for i, h in ipairs(cps) do
        before[h.name] = etcd.status(eps[i])
        if before[h.name] then name_of[before[h.name].member_id] = h.name end
      end
      if p.compact then step("compact", function() compact(eps[1], p.compact_keep) end, { probe = rerun }) end
      local done = step("defragment every member", function()
        if http.dry_run() then
          log.info("dry-run: would defragment every member one at a time, the leader last", { members = #cps })
          return {}
        end
        local out, err, msg = etcd.defrag_all(eps, { leader_last = true, pause = p.pause })
        if not out then error("defragmentation stopped: " .. tostring(msg or err), 0) end
        return out
      end, { probe = rerun })
      local lines = { { "NODE", "LEADER", "DB BEFORE", "DB AFTER", "QUOTA" } }
      local over = {}
      for i, h in ipairs(cps) do
        local after = etcd.status(eps[i])
        local lead = false
        for _, d in ipairs(done) do if d.endpoint == eps[i] then lead = d.leader end end
        local quota = quota_of(h)
        if after and after.db_size >= quota then
          over[#over + 1] = string.format("%s's database is %s, its quota %s", h.name, mib(after.db_size), mib(quota))
        end
        -- A dry run changed nothing: its "after" would only repeat "before".
        lines[#lines + 1] = { h.name, lead and "yes" or "", mib(before[h.name] and before[h.name].db_size),
          http.dry_run() and "-" or mib(after and after.db_size), mib(quota) }
      end
      print(text.columns(lines, { right = { [3] = true, [4] = true, [5] = true } }))
      if #nospace > 0 and not http.dry_run() and #over > 0 then
        -- Disarmed over its quota, etcd raises the alarm again at the next write.
        fail("NOSPACE stays armed: %s after the defragmentation; compact (-e compact=true, fewer compact_keep), delete "
          .. "what fills it, or raise --quota-backend-bytes, then run this again", table.concat(over, "; "))
      end
      if #nospace > 0 then
        local function named(a) return tostring(name_of[a.member_id] or a.member_id) end
        step("disarm NOSPACE", function()
          local names = {}
          for _, a in ipairs(nospace) do
            local ok, err, msg = etcd.disarm(a, eps[1])
            if not ok then error("disarming NOSPACE on " .. named(a) .. ": " .. tostring(msg or err), 0) end
            names[#names + 1] = named(a)
          end
          if http.dry_run() then return end
          local left = {}
          for _, a in ipairs(etcd.alarms(eps[1]) or {}) do if a.alarm == "NOSPACE" then left[#left + 1] = named(a) end end
          if #left > 0 then error("NOSPACE is raised again on " .. table.concat(left, ", ") .. " after its disarm", 0) end
          log.warn("NOSPACE disarmed: etcd takes writes again", { members = table.concat(names, ",") })
        end, { probe = rerun })
      end
      if lease then lease:release() end
      return
    end

    -- mode=install: changes the nodes' units, not etcd (the timers defragment later, each its own
    -- member); held all the same, so no other engine run changes these nodes meanwhile.
    local times = maint.times(p.at, p.stagger, #cps)
    step("precheck", function()
      local bad = {}
      for _, h in ipairs(cps) do
        if not member_flags(h) then bad[#bad + 1] = h.name .. ": no etcd here (" .. svc.ENV_FILE .. " or " .. svc.MANIFEST .. ")" end
        if not svc.version(h) then
          bad[#bad + 1] = h.name .. ": no " .. svc.BIN .. "/etcd and etcdctl: move etcd to systemd first (etcd-to-systemd.lua)"
        end
      end
      if #bad > 0 then error("precheck failed, nothing was changed:\n  " .. table.concat(bad, "\n  "), 0) end
    end, { probe = rerun })
    local lease = nodes.lease()
    fleet.each(cps, { at_once = #cps }, function(h)
      local i
      for k, x in ipairs(cps) do if x == h then i = k end end
      ops.step(h, systemd.file(maint.SCRIPT, maint.SCRIPT_TEXT, { mode = "0755", name = "script " .. maint.SCRIPT }))
      ops.step(h, systemd.file(maint.ENV_FILE, maint.env_text(member_flags(h), p), { mode = "0640", name = "settings " .. maint.ENV_FILE }))
      ops.step(h, systemd.unit(maint.SERVICE, maint.service_text()))
      ops.step(h, systemd.unit(maint.TIMER, maint.timer_text(times[i])))
      ops.step(h, systemd.enabled(maint.TIMER))
      ops.step(h, systemd.started(maint.TIMER))
    end)
    local lines = { { "NODE", "DAILY AT", "TIMER" } }
    local bad = {}
    for i, h in ipairs(cps) do
      local line = maint.timer_line(h)
      local active = systemd.active(h, maint.TIMER)
      if not http.dry_run() and (not active or not line) then bad[#bad + 1] = h.name .. ": " .. maint.TIMER .. " is not active" end
      lines[#lines + 1] = { h.name, times[i], line and (line:gsub("%s+", " ")) or "(not active)" }
    end
    print(text.columns(lines))
    if lease then lease:release() end
    if #bad > 0 then fail("%s", table.concat(bad, "; ")) end
  end,
}
