-- kubeadm cluster upgrade: preflight that changes nothing when a check fails, the control plane one
-- node at a time (leader first), the workers N at a time behind a gate, postflight. What seed 004's
-- Job chain did, without its failure modes, and stopping where seed 000's upgrade went wrong.
-- Every phase is a journaled step: `engine resume RUN` continues a stopped run.
local k8s = require "engine.k8s"
local fleet = require "engine.fleet"
local http = require "engine.http"
local pushgateway = require "engine.pushgateway"
local prometheus = require "engine.prometheus"
local semver = require "std.semver"
local kubeadm = require "std.kubeadm"
local notify = require "std.notify"
local ahead = require "std.ahead"
local cluster_lease = require "std.cluster_lease"
local node = require "std.node"
local ops = require "std.ops"
local checks = require "upgrade_checks"
local rollout = require "upgrade_rollout"
local groups = require "std.groups"
local text = require "std.text"

local function node_row(n, target)
  return { n.name, n.ready and "Ready" or "NotReady", n.kubelet_version,
    n.unschedulable and ("cordoned" .. (n.cordoned_by == k8s.identity() and " by this run" or " by someone else"))
      or (n.kubelet_version == target and "done" or "not upgraded") }
end

--- Where every node stands, for the operator after a stop.
local function report_nodes(target)
  local nodes = k8s.nodes()
  if not nodes then return end
  table.sort(nodes, function(a, b) return a.name < b.name end)
  local rows = { { "NODE", "STATUS", "KUBELET", "STATE" } }
  for _, n in ipairs(nodes) do rows[#rows + 1] = node_row(n, target) end
  print(text.columns(rows))
end

--- `kubeadm upgrade apply|node` on a node: one definition for a node's turn and for preparing a
--- worker ahead, so the prepared step is the one the turn finds done in the journal.
local function kubeadm_upgrade(p, target, how)
  return kubeadm.upgraded(how == "apply" and "apply" or "node", target,
    { timeout = p.kubeadm_timeout, control_plane = how ~= "worker", component_timeout = p.component_timeout })
end

--- The node steps both phases share, each an operation (std.ops) journaled under the host's name:
--- it asks the node whether it is already so before changing anything, and on resume after a
--- kill inside it, the same question is its probe. after_kubeadm(rest), when given, runs the steps
--- after `kubeadm upgrade` (rest): a control-plane node prepares the next one meanwhile.
--- beside_kubeadm(upgrade), when given, runs the `kubeadm upgrade` step (upgrade): the leader
--- downloads its own kubelet and kubectl meanwhile.
local function upgrade_node(h, p, target, how, after_kubeadm, beside_kubeadm)
  -- A PDB's refusal is retried often enough that a short drain_timeout still sees replacements
  -- of other nodes' pods become ready.
  local retry = math.min(5, math.max(1, p.drain_timeout / 5))
  ops.step(h, node.drained { ignore_daemonsets = true, delete_emptydir = true, timeout = p.drain_timeout,
    retry_interval = retry, delete_blocked_pods = p.delete_blocked_pods })
  if p.kind == "minor" then ops.step(h, kubeadm.apt_repository(target)) end
  ops.step(h, kubeadm.packages({ "kubeadm" }, target, "kubeadm package"))
  local function upgrade() ops.step(h, kubeadm_upgrade(p, target, how)) end
  if beside_kubeadm then beside_kubeadm(upgrade) else upgrade() end
  local function rest()
    ops.step(h, kubeadm.packages({ "kubelet", "kubectl" }, target, "kubelet and kubectl packages"))
    ops.step(h, kubeadm.kubelet_at(target, { timeout = p.node_timeout }))
    if how ~= "worker" then ops.step(h, kubeadm.static_pods_at(target, { timeout = p.node_timeout })) end
    ops.step(h, node.uncordoned())
  end
  if after_kubeadm then after_kubeadm(rest) else rest() end
end

--- kubeadm's own procedure for a worker (kubernetes.io, "Upgrading Linux nodes") upgrades its
--- kubeadm and runs `kubeadm upgrade node` before the drain: on a worker that command writes the
--- kubelet's configuration under /var/lib/kubelet, read only at the kubelet's next start (its turn's).
--- Done ahead, while the control-plane nodes after the leader are upgraded, the worker's turn finds
--- these steps done in the journal (the same operations, the same names) and the node is cordoned
--- for less time. A worker the rollout would skip is left alone. A control-plane node gets its apt
--- source and kubeadm only: its `kubeadm upgrade node` restarts its static pods, in its own turn.
--- Both get the kubelet and kubectl packages downloaded (download_node; not installed: a kubelet
--- package may restart the kubelet, which waits for the drain): the turn's install then fetches
--- nothing. The leader ("leader", prepared beside the snapshot) downloads beside its own `kubeadm
--- upgrade apply` instead, where nothing waits for it.
local function download_node(h, target)
  ops.step(h, kubeadm.downloaded({ "kubelet", "kubectl" }, target, "kubelet and kubectl downloaded"))
end

local function prepare_node(h, p, target, how)
  if how == "worker" and p.skip_unreachable and rollout.unreachable(h, target) then return end
  if p.kind == "minor" then ops.step(h, kubeadm.apt_repository(target)) end
  ops.step(h, kubeadm.packages({ "kubeadm" }, target, "kubeadm package"))
  if how == "worker" then ops.step(h, kubeadm_upgrade(p, target, "worker")) end
  if how ~= "leader" then download_node(h, target) end
end

-- A step that is safe to run again: after a stop between its start and its record of finishing,
-- resume runs it again instead of asking.
local function rerun() return false end

return runbook {
  name = "k8s-upgrade",
  summary = "Upgrade a kubeadm cluster one version step: preflight, control plane (leader first), workers, postflight",
  params = {
    version = { type = "string", required = true, pattern = "^v?%d+%.%d+%.%d+$", help = "target version, e.g. 1.34.3" },
    kind = { type = "enum", values = { "patch", "minor" }, required = true,
      help = "patch or minor; checked against what runs (one minor at a time)" },
    workers_at_once = { type = "amount", default = "1", pattern = "^0*[1-9]%d*%%?$",
      help = "workers upgraded at once: a count from 1, or a percentage of the workers (\"10%\")" },
    max_failures = { type = "amount", default = "0",
      help = "workers that may fail before the rollout stops: a count or a percentage" },
    canary = { type = "integer", min = 0, default = 1,
      help = "workers upgraded alone first; the window opens after them, and one failing stops the rollout" },
    taint_next = { type = "boolean", default = true,
      help = "taint the workers not yet upgraded PreferNoSchedule while the current ones drain: the next workers_at_once until that many are done, then all (each removed when it is done)" },
    wait_workloads = { type = "list", default = {}, pattern = "^[^/%s]+/%a+[/?].+$",
      help = "before each next worker, these have every replica ready: NS/KIND/NAME or NS/KIND?SELECTOR (shop/deployment/web, */daemonset?app=agent)" },
    accept_removed_apis = { type = "boolean", default = false,
      help = "go on with a minor upgrade although objects are served only through APIs the target removes (preflight lists them)" },
    maintenance_window = { type = "string",
      help = "no node starts outside it: DAYS HH:MM-HH:MM [ZONE], several joined by ';' (\"Sat,Sun 22:00-04:00 Europe/Berlin\"); at its end the running nodes finish and the run stops, engine resume goes on in the next" },
    window_wait = { type = "boolean", default = false,
      help = "outside the maintenance window, wait until it opens instead of stopping (a Job's pod: no one resumes it)" },
    notify_url = { type = "string", pattern = "^https?://%S+$", help = "a webhook told of the start, a held gate, a stop, a failure and the success (never changes the outcome)" },
    notify_format = { type = "enum", values = { "slack", "json" }, default = "slack",
      help = "slack: {\"text\": ...} (Slack and compatible); json: event, run, runbook, node, message" },
    prepare_ahead = { type = "boolean", default = true,
      help = "the leader's apt source and kubeadm while the etcd snapshot is taken; while the control-plane nodes after the leader upgrade, switch the workers' apt source, install their kubeadm and run kubeadm upgrade node, workers_at_once at a time (before their drain, as kubeadm's own procedure has it); the next control-plane node's apt source and kubeadm while the one before finishes" },
    skip_unreachable = { type = "boolean", default = false,
      help = "a worker NotReady before the run touched it, or SSH refused or timed out, is skipped and listed; engine resume retries it" },
    drain_timeout = { type = "duration", default = "10m", help = "per node; a drain a PDB still blocks then stops the run" },
    delete_blocked_pods = { type = "boolean", default = false,
      help = "when PDBs still block a drain at its timeout, delete the pods (bypasses the PDBs)" },
    ignore_alerts = { type = "list", default = { "Watchdog", "InfoInhibitor" }, help = "alerts that do not halt" },
    prometheus = { type = "string",
      help = "Prometheus for the alert gates (default: the hosts' prometheus_url var, else http://127.0.0.1:9090)" },
    pushgateway = { type = "string",
      help = "Pushgateway for the upgrade gauges (default: the hosts' pushgateway_url var, else http://127.0.0.1:9091)" },
    pushgateway_job = { type = "string", default = "k8s_upgrade", help = "job label of the gauges" },
    snapshot_dir = { type = "string", default = "/var/backups/engine", help = "where the etcd snapshot is kept (here)" },
    snapshot_keep = { type = "integer", min = 0, default = 0,
      help = "once the snapshot is kept, remove older etcd-*.db snapshots in snapshot_dir beyond this many (the new one counts); 0 keeps every one" },
    quiet_hours = { type = "number", min = 0, default = 24, help = "no node may have changed Ready state for this long" },
    max_disk_used = { type = "integer", min = 0, max = 100, default = 85, help = "percent of / a control-plane node may use" },
    min_cert_days = { type = "integer", min = 0, default = 7, help = "days a control-plane certificate must have left" },
    kubeadm_timeout = { type = "duration", default = "30m", help = "for kubeadm upgrade apply/node on one node (the backstop)" },
    component_timeout = { type = "duration", help = "kubeadm's own wait for each static pod (UpgradeConfiguration timeouts, kubeadm 1.31+); default: kubeadm's 5m" },
    node_timeout = { type = "duration", default = "10m", help = "for a node to be Ready at the version" },
    gate_passes = { type = "integer", min = 1, default = 2, help = "gate passes in a row before the next worker" },
    gate_interval = { type = "duration", min = "1s", default = "15s" },
    gate_timeout = { type = "duration", default = "30m", help = "a gate still closed then stops the rollout" },
    pod_ready_ratio = { type = "number", min = 0, max = 1, default = 0.9, help = "postflight: share of pods that must be ready" },
    control_plane = { type = "string", default = "k8s-cp", help = "inventory group of the control-plane nodes" },
    leader = { type = "string", default = "k8s-cp-leader", help = "inventory group whose first host goes first (an inventory without the group: the first control-plane host)" },
    workers = { type = "string", default = "k8s-worker", help = "inventory group of the workers (an inventory without the group: none)" },
  },
  ---@param p params.k8s_upgrade
  ---@param inv engine.Inventory
  run = function(p, inv)
    local target = semver.format(p.version)
    p.version = target
    notify.configure { url = p.notify_url, format = p.notify_format, runbook = "k8s-upgrade to v" .. target }
    local cps, workers = inv:hosts(p.control_plane), groups.optional(inv, p.workers, "k8s-worker")
    if #cps == 0 and #inv:hidden(p.control_plane) > 0 then
      fail("--limit hides every host of %s (%s): the upgrade goes through the control plane first, as kubeadm's " ..
        "procedure does, and reads it when it is done; run without --limit (a worker left out before is upgraded by " ..
        "resuming its run)", p.control_plane, table.concat(inv:hidden(p.control_plane), ", "))
    end
    if #cps == 0 then fail("inventory group %s has no hosts", p.control_plane) end
    local leader = groups.optional(inv, p.leader, "k8s-cp-leader")[1] or cps[1]
    -- Where the monitoring is belongs to the cluster, as doctor.lua reads it: the inventory's vars.
    local vars = leader.vars or {}
    p.prometheus = p.prometheus or vars.prometheus_url or "http://127.0.0.1:9090"
    p.pushgateway = p.pushgateway or vars.pushgateway_url or "http://127.0.0.1:9091"
    prometheus.configure { url = p.prometheus }
    pushgateway.configure { url = p.pushgateway }
    table.sort(cps, function(a, b) return (a == leader and 0 or 1) < (b == leader and 0 or 1) or
      ((a == leader) == (b == leader) and a.name < b.name) end)
    -- In a pod (NODE_NAME from the downward API, deploy/), the node this engine runs on goes last
    -- among its kind (the leader still first): its drain evicts this engine, and the Job's next pod
    -- resumes the run elsewhere with little left to do.
    local here = os.getenv("NODE_NAME")
    if here and here ~= "" then
      rollout.last(workers, here)
      if here ~= leader.name then rollout.last(cps, here) end
    end

    if p.maintenance_window then  -- a bad spec raises here, before anything runs
      local w = fleet.window(p.maintenance_window)
      if not w.open and p.window_wait and w.opens_at then
        log.warn((http.dry_run() and "dry-run: would wait" or "outside the maintenance window: waiting") ..
          " until it opens; nothing was changed", { window = w.spec, opens_at = os.date("!%Y-%m-%dT%H:%M:%SZ", w.opens_at) })
        if not http.dry_run() then sleep(math.max(0, w.opens_at - os.time())) end
      elseif not w.open then
        fail("outside the maintenance window (%s): it opens next at %s; nothing was changed", w.spec,
          w.opens_at and os.date("!%Y-%m-%dT%H:%M:%SZ", w.opens_at) or "never")
      end
    end
    local ok, err = pcall(function()
      -- 1. Preflight: read-only checks, every failure named; nothing has changed if one fails.
      local facts = step("preflight", function() return checks.preflight(p, leader, cps, workers) end, { probe = rerun })
      -- The cluster's Leases (std.cluster_lease): one engine run changing the cluster at a time,
      -- one upgrade at a time. A resumed run holds them under the same run id.
      local lease
      if http.dry_run() then
        log.info("dry-run: would take the leases kube-system/engine-cluster and kube-system/k8s-upgrade")
      else
        local lerr, lmsg
        lease, lerr, lmsg = cluster_lease.take("k8s-upgrade")
        if not lease then fail("the cluster lease %s", lmsg or lerr) end
      end
      -- The images pulled on every control-plane node before its upgrade, so kubeadm's
      -- per-component timeout is not spent pulling (seed 000); pulled while the snapshot is taken
      -- (on a real cluster each takes seconds to minutes). A pull that fails there is a warning,
      -- and runs again after the snapshot, where its failure stops the run before any node changes.
      local function pull(h)
        step("pull images", function()
          kubeadm.run(h, "kubeadm config images pull --kubernetes-version v" .. target, { timeout = 1800,
            what = "kubeadm config images pull" })
        end, { probe = rerun })
      end
      local function snapshot() return step("etcd snapshot", function() return checks.snapshot(p, leader) end, { probe = rerun }) end
      -- Once every image is pulled (a pull that fails stops the run after the snapshot, before any
      -- node changes), the leader's apt source and kubeadm package (kubeadm's procedure upgrades
      -- kubeadm first) are prepared there too: on a real cluster `apt-get update` and the download
      -- take what the snapshot of a large keyspace takes. Neither touches what the cluster runs;
      -- if the snapshot fails, the run stops with them done (its resume finds them in the journal).
      local ahead_ok = p.prepare_ahead and not http.dry_run()
      local function beside_snapshot()
        local pulled = true
        fleet.each(cps, { at_once = #cps }, function(h)
          local ok, err = pcall(pull, h)
          if not ok then
            pulled = false
            log.warn("preparing ahead failed: its own turn does that work", { error = tostring(err) })
          end
        end)
        if pulled and ahead_ok then prepare_node(leader, p, target, "leader") end
      end
      local snap
      if http.dry_run() then snap = snapshot() else snap = ahead.alongside(snapshot, { leader }, {}, beside_snapshot) end
      checks.snapshot_kept(snap)
      fleet.each(cps, { at_once = #cps }, pull)
      step("gauges: upgrade in flight", function()
        pushgateway.push(p.pushgateway_job, {}, { k8s_upgrade_in_flight = 1, k8s_upgrade_started_timestamp = os.time(),
          k8s_upgrade_snapshot_taken = snap.size > 0 and 1 or 0 }, { required = true })
      end, { probe = rerun })
      log.info("preflight passed", { from = facts.from, to = target, kind = p.kind })
      notify.send("start", string.format("from %s, %d control-plane node(s) and %d worker(s)", facts.from, #cps, #workers),
        { from = facts.from, to = target })

      -- 2. Control plane, one node at a time, the leader first (its kubeadm upgrade apply moves the
      -- cluster to the version). The others follow while the workers are prepared. Once a node's
      -- `kubeadm upgrade` has succeeded, the next control-plane node's apt source and kubeadm are
      -- prepared while this node's kubelet is upgraded, restarted and comes back Ready.
      local cp_opts = { at_once = 1, window = p.maintenance_window, window_wait = p.window_wait }
      local next_cp = {}
      for i, h in ipairs(cps) do next_cp[h.name] = cps[i + 1] end
      local function upgrade_cp(h)
        local nxt, after_kubeadm, beside_kubeadm = next_cp[h.name], nil, nil
        if ahead_ok and nxt then
          after_kubeadm = function(rest)
            ahead.alongside(rest, { nxt }, { at_once = 1 }, function(x) prepare_node(x, p, target, "control-plane") end)
          end
        end
        if ahead_ok and h == leader then
          beside_kubeadm = function(upgrade)
            ahead.alongside(upgrade, { h }, { at_once = 1 }, function(x) download_node(x, target) end)
          end
        end
        upgrade_node(h, p, target, h == leader and "apply" or "node", after_kubeadm, beside_kubeadm)
      end
      fleet.each({ cps[1] }, cp_opts, upgrade_cp)
      local others = { table.unpack(cps, 2) }

      -- 3. Workers, behind a gate (every node Ready, no alert firing): the canary alone, then
      -- workers_at_once at a time, the next ones tainted PreferNoSchedule while these drain.
      -- started: the worker's turn began; preparing: its preparation ahead is running now.
      local started, preparing = {}, {}
      local function worker_phase()
        if #workers == 0 then return end
        -- passed_by: skipped as unreachable (its NotReady no longer holds the gate)
        -- in_flight: being upgraded now. Their kubelet restarts make them NotReady for a moment,
        -- which workers_at_once already allows for and each node's own Ready step checks; counted
        -- by the gate, they would hold the next admission until the whole window settled, turning
        -- the sliding window into lockstep batches.
        local passed_by, in_flight = {}, {}
        local window, worker_names = rollout.count(p.workers_at_once, #workers), {}
        local taints = { done = 0, put = {} }  -- rollout.taint_next's: workers done, taints put
        for _, w in ipairs(workers) do worker_names[w.name] = true end
        local res, held
        local rolled, rerr = pcall(function()
          res = fleet.each(workers, { at_once = p.workers_at_once, max_failures = p.max_failures,
            canary = math.min(p.canary, #workers), window = p.maintenance_window, window_wait = p.window_wait,
            between = function(next_h)
              -- true, or nil, why, or nil, word, message (std.gates): kept whole for fleet.each
              local open, why, message = checks.gate(p, function(name)
                return in_flight[name] or (p.skip_unreachable and worker_names[name] and (not started[name] or passed_by[name]))
              end)
              if not open and not held then  -- said once per hold, not at every try
                notify.send("gate held", tostring(message or why), { node = next_h and next_h.name })
              end
              held = not open
              return open, why, message
            end, gate_passes = p.gate_passes,
            gate_interval = p.gate_interval, gate_timeout = p.gate_timeout },
            function(h)
              started[h.name] = true  -- no preparation of it starts now
              -- One still preparing it (apt, kubeadm) finishes first: its steps are the turn's
              -- own, found done in the journal, and two apt commands at once would meet dpkg's lock.
              if preparing[h.name] then
                log.info("waiting for its preparation ahead to end before its turn")
                while preparing[h.name] do sleep(0.05) end
              end
              if p.skip_unreachable then
                local why = rollout.unreachable(h, target)
                if why then
                  passed_by[h.name] = true
                  fleet.skip(why)
                end
              end
              if p.taint_next then rollout.taint_next(workers, started, h, window, taints) end
              in_flight[h.name] = true
              local done, uerr = pcall(upgrade_node, h, p, target, "worker")
              in_flight[h.name] = nil  -- a failed node's NotReady holds the gate (max_failures > 0)
              if not done then error(uerr, 0) end
              taints.done = taints.done + 1
              if p.taint_next then rollout.untaint({ h }) end
            end)
        end)
        if p.taint_next then rollout.untaint(workers) end  -- however the rollout ended
        if not rolled then error(rerr, 0) end
        local skipped = rollout.skipped(res)
        if #skipped > 0 then
          fail("%d worker(s) skipped, every other node upgraded: %s. Once they are reachable, resuming this run "
            .. "upgrades only them (then the postflight)", #skipped, table.concat(skipped, ", "))
        end
      end

      -- Workers are prepared ahead (std.ahead) from the leader's `kubeadm upgrade apply` on, in
      -- rollout order, workers_at_once at a time: while the control-plane nodes after the leader
      -- upgrade, and on through the worker phase ahead of the rollout's window (a large cluster's
      -- control plane ends long before every worker is prepared). A worker whose turn has begun is
      -- not prepared; a turn waits for its own preparation in flight. Outside the maintenance
      -- window none starts (a preparation changes the node's packages, if not what it runs).
      local function prepare_worker(h)
        if started[h.name] then return end
        if p.maintenance_window and not fleet.window(p.maintenance_window).open then return end
        preparing[h.name] = true
        local _ <close> = setmetatable({}, { __close = function() preparing[h.name] = nil end })
        prepare_node(h, p, target, "worker")
      end
      local function after_leader()
        fleet.each(others, cp_opts, upgrade_cp)
        worker_phase()
      end
      if ahead_ok and #workers > 0 then
        ahead.alongside(after_leader, workers, { at_once = p.workers_at_once }, prepare_worker)
      else
        after_leader()
      end

      -- 4. Postflight.
      step("postflight", function() checks.postflight(p, leader, target, checks.in_run(cps, workers)) end,
        { probe = rerun })
      step("gauges: cleared", function()
        pushgateway.push(p.pushgateway_job, {}, { k8s_upgrade_in_flight = 0, k8s_upgrade_started_timestamp = 0,
          k8s_upgrade_snapshot_taken = 0 }, { required = true })
      end, { probe = rerun })
      if lease then lease:release() end
    end)
    if not ok then
      local text = tostring(err)
      notify.send((text:find("maintenance window", 1, true) or text == "interrupted") and "stop" or "failure", text)
      log.error("upgrade stopped", { error = text })
      print("\nThe upgrade to v" .. target .. " stopped: " .. tostring(err))
      report_nodes("v" .. target)
      error(err, 0)
    end
    if http.dry_run() then
      print("\nDry run: nothing was changed. The nodes as they are:")
    else
      notify.send("success", "every node runs v" .. target)
      print("\nThe cluster runs v" .. target .. ":")
    end
    report_nodes("v" .. target)
  end,
}
