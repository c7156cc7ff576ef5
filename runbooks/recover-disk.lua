-- A node whose root disk filled up (seed 002: a control plane at 100%, its static pods unable to
-- start, the API gone). Triage every node (what fills it, what each cleanup would free), clean up
-- the full ones in the seed's order, safest first, each a journaled step with the free space
-- before and after, stopping as soon as / is under the target; restart the kubelet and wait for
-- the node's API server (through an SSH tunnel), its etcd member and the Node (when the API does
-- not answer through the kubeconfig, the run's credentials through a tunnel to a control-plane
-- node's own API server, the first that answers, seed 002's way round); then install the
-- prevention (journald's SystemMaxUse, a weekly cleanup timer) and print the alert rule to add.
-- Never touches /var/lib/etcd or /etc/kubernetes. A second run changes nothing.
local disk = require "recover_disk"
local fleet = require "engine.fleet"
local http = require "engine.http"
local k8s = require "engine.k8s"
local kubeadm = require "std.kubeadm"
local ops = require "std.ops"
local systemd = require "std.systemd"

return runbook {
  name = "recover-disk",
  summary = "Free a full root disk in seed 002's order, bring the node's control plane back, prevent it",
  params = {
    nodes = { type = "string", default = "all", help = "inventory pattern of the nodes to examine" },
    control_plane = { type = "string", default = "k8s-cp", help = "inventory group (or pattern) of the control-plane nodes" },
    target_used = { type = "integer", min = 1, max = 99, default = 80, help = "percent of / used: clean until at or under it" },
    journal_vacuum_time = { type = "string", default = "2d", pattern = "^%d+[smhdw]?$",
      help = "journalctl --vacuum-time: journal files older than this are removed" },
    prevention = { type = "boolean", default = true, help = "install journald's SystemMaxUse and the weekly cleanup timer" },
    journal_max_use = { type = "string", default = "500M", pattern = "^%d+[KMG]?$", help = "journald's SystemMaxUse" },
    cleanup_vacuum_time = { type = "string", default = "7d", pattern = "^%d+[smhdw]?$", help = "the weekly timer's --vacuum-time" },
    cleanup_weekday = { type = "enum", values = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" }, default = "Sun" },
    cleanup_at = { type = "time", default = "04:00", help = "the first node's timer fires at HH:MM[:SS] (node time)" },
    cleanup_stagger = { type = "duration", default = "10m", help = "each next node's timer fires this much later" },
    ready_timeout = { type = "duration", default = "3m", help = "for the pods, /readyz, etcd and the Node after the kubelet restart" },
    max_raft_lag = { type = "integer", min = 0, default = 1000, help = "raft entries an etcd member may trail the leader by" },
  },
  ---@param p params.recover_disk
  ---@param inv engine.Inventory
  run = function(p, inv)
    local hosts = inv:hosts(p.nodes)
    if #hosts == 0 then fail("no hosts match %s", p.nodes) end
    local is_cp = {}
    for _, h in ipairs(inv:hosts(p.control_plane)) do is_cp[h.name] = true end

    -- 1. Triage, read only.
    local found = step("triage", function()
      local out = {}
      fleet.each(hosts, { at_once = 10, max_failures = 0 }, function(h) out[h.name] = disk.triage(h) end)
      return out
    end, { probe = function() return false end })
    print(disk.plan_text(found, hosts, p))
    local full = {}
    for _, h in ipairs(hosts) do if found[h.name].usage.used > p.target_used then full[#full + 1] = h end end
    local api_ok = false
    local route, route_node  -- the tunnel through a node when the API answers only that way (seed 002)
    local function find_route(cps)
      if api_ok or http.dry_run() then return end
      -- The kubeconfig's route first, each time: a one-node control plane's API comes back on it
      -- with the node; a tunnel is for a route that is cut.
      api_ok = k8s.ready()
      if api_ok then return end
      route, route_node = kubeadm.api_through(cps)
      api_ok = route ~= nil
    end

    -- 2. and 3. Clean up the full nodes, one at a time, and bring each back.
    if #full == 0 then
      print(string.format("\nEvery node's / is at or under %d%%: nothing to clean.", p.target_used))
    else
      -- The ones with room first (their API servers may still answer); a node this run did not
      -- examine (outside `nodes`) counts as one with room.
      local function full_disk(h) return found[h.name] ~= nil and found[h.name].usage.used > p.target_used end
      local cps = {}
      for _, h in ipairs(inv:hosts(p.control_plane)) do if not full_disk(h) then cps[#cps + 1] = h end end
      for _, h in ipairs(inv:hosts(p.control_plane)) do if full_disk(h) then cps[#cps + 1] = h end end
      find_route(cps)
      if route then
        print(string.format("\nThe API does not answer through this run's kubeconfig; it does through an SSH tunnel to " ..
          "%s's own API server, with the same credentials: the run uses that.", route_node))
      elseif not api_ok then
        print("\nThe API does not answer through this run's kubeconfig nor through any control-plane node yet: the " ..
          "nodes are checked over SSH (their own API server through a tunnel) until one answers.")
      end
      fleet.each(full, { at_once = 1 }, function(h)
        local rows = disk.clean(h, p)
        step("kubelet and control plane back", function()
          local since = disk.revive(h, p, is_cp[h.name])
          if is_cp[h.name] then find_route({ h }) end  -- the first one back carries the API for the rest
          disk.node_ready(h, p, since, api_ok)
        end)
        if not http.dry_run() then
          local now = disk.usage(h)
          -- print inside fleet.each already prefixes the host's name.
          print(string.format("/ %d%% used, %d MiB free after %d cleanup(s)", now.used, now.avail // 1048576, #rows))
        end
      end)
    end

    -- 4. Prevention: the same on every node, each an idempotent operation.
    if p.prevention then
      local at = systemd.times(p.cleanup_at, p.cleanup_stagger, #hosts)
      fleet.each(hosts, { at_once = 1 }, function(h)
        local i
        for n, x in ipairs(hosts) do if x.name == h.name then i = n end end
        ops.step(h, disk.journald(p))
        ops.step(h, systemd.file(disk.SCRIPT, disk.SCRIPT_TEXT, { mode = "0755", name = "script " .. disk.SCRIPT }))
        ops.step(h, systemd.unit(disk.SERVICE, disk.service_text(p)))
        ops.step(h, systemd.unit(disk.TIMER, disk.timer_text(p, at[i])))
        ops.step(h, systemd.enabled(disk.TIMER))
        ops.step(h, systemd.started(disk.TIMER))
      end)
      print("\nAdd this rule to Prometheus (it needs node_exporter's filesystem metrics):\n" .. disk.ALERT_RULE)
    end
    if route then route:close() end
  end,
}
