-- etcd maintenance (seed 003's operating tasks after the move to systemd).
--   mode=install (default): on every control-plane node a systemd timer that checks the node's own
--     member, and only it (IR-3), and defragments it when its database is fragmented past a
--     threshold (compacting first if asked). The timers are staggered so no two members are
--     defragmented at once; the run checks every timer is active and when each fires next.
--   mode=defrag: now, the whole cluster, one member at a time, every member healthy before each,
--     the leader last.
local etcd = require "engine.etcd"
local fleet = require "engine.fleet"
local http = require "engine.http"
local ops = require "std.ops"
local svc = require "std.etcd_service"
local systemd = require "std.systemd"
local nodes = require "etcd_nodes"
local maint = require "etcd_maintenance"
local text = require "std.text"

local function rerun() return false end

-- The node's etcd settings: its EnvironmentFile under systemd, else its static Pod manifest.
local function member_flags(h)
  local env = systemd.read(h, svc.ENV_FILE)
  if env then return svc.flags_of_env(env) end
  local m = svc.manifest(h)
  return m and m.flags
end

return runbook {
  name = "etcd-maintenance",
  summary = "etcd defragmentation: a staggered per-node systemd timer (its own member only), or the whole cluster now",
  params = {
    mode = { type = "enum", values = { "install", "defrag" }, default = "install",
      help = "install the timers, or defragment every member now (one at a time, the leader last)" },
    at = { type = "time", default = "03:00", help = "the first node's daily check, HH:MM[:SS]" },
    stagger = { type = "duration", default = "20m", help = "each next node's check this much later" },
    threshold = { type = "integer", min = 0, max = 100, default = 30, help = "percent of the database that is free space before it is defragmented" },
    min_db_mb = { type = "integer", min = 0, default = 64, help = "a database smaller than this many MiB is left alone" },
    compact = { type = "boolean", default = false,
      help = "compact before the check (the API server compacts every 5 minutes already)" },
    compact_keep = { type = "integer", min = 0, default = 10000, help = "with compact: revisions kept" },
    control_plane = { type = "string", default = "k8s-cp", help = "inventory group of the etcd members" },
    pause = { type = "duration", default = "5s", help = "defrag mode: pause between members" },
  },
  ---@param p params.etcd_maintenance
  ---@param inv engine.Inventory
  run = function(p, inv)
    local cps = inv:hosts(p.control_plane)
    if #cps == 0 then fail("inventory group %s has no hosts", p.control_plane) end
    table.sort(cps, function(a, b) return a.name < b.name end)

    if p.mode == "defrag" then
      local eps = nodes.endpoints(cps)
      -- The cluster's leases, as every etcd runbook holds them: a defragmentation blocks each
      -- member in turn, which an upgrade's etcd phase (kubeadm's or etcd-upgrade's) must not meet.
      local lease = nodes.lease()
      local before = {}
      for i, h in ipairs(cps) do before[h.name] = etcd.status(eps[i]) end
      local done = step("defragment every member", function()
        if http.dry_run() then
          log.info("dry-run: would defragment every member one at a time, the leader last", { members = #cps })
          return {}
        end
        local out, err, msg = etcd.defrag_all(eps, { leader_last = true, pause = p.pause })
        if not out then error("defragmentation stopped: " .. tostring(msg or err), 0) end
        return out
      end, { probe = rerun })
      local lines = { { "NODE", "LEADER", "DB BEFORE", "DB AFTER" } }
      for i, h in ipairs(cps) do
        local after = etcd.status(eps[i])
        local lead = false
        for _, d in ipairs(done) do if d.endpoint == eps[i] then lead = d.leader end end
        lines[#lines + 1] = { h.name, lead and "yes" or "", tostring(before[h.name] and before[h.name].db_size),
          tostring(after and after.db_size) }
      end
      print(text.columns(lines, { right = { [3] = true, [4] = true } }))
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
