-- Certificate renewal with a verified reload (seed 001: a control plane lost twice to expired
-- certificates, and "kubectl worked but the control plane was not healthy" until the components
-- were restarted). One control-plane node at a time: back up the PKI and kubeconfigs outside
-- manifests/, `kubeadm certs renew`, restart each static pod the way kubeadm documents (manifest
-- out, pod gone, manifest back, a new container), the API server's /readyz and etcd's health
-- between, then prove it: every endpoint of the node serves the renewed certificate (serial and
-- NotAfter of the file), the scheduler and controller-manager serve a new one (they restarted).
-- When the certificates have already expired (this run's kubeconfig refused), everything goes
-- over SSH and the API is reached through a tunnel with the first renewed node's admin.conf.
-- timer=true installs a weekly renewal timer on each node (runbooks/lib/cert_timer.lua).
local fleet = require "engine.fleet"
local http = require "engine.http"
local k8s = require "engine.k8s"
local renew = require "cert_renew"
local cluster_lease = require "std.cluster_lease"
local static_pod = require "std.static_pod"
local timers = require "cert_timer"

return runbook {
  name = "cert-renew",
  summary = "Renew kubeadm's certificates node by node, restart what reads them, verify what each endpoint serves",
  params = {
    certs = { type = "list", default = { "all" }, values = { "all", table.unpack(renew.RENEWABLE) },
      help = "kubeadm's names to renew, or all" },
    under_days = { type = "integer", min = 0,
      help = "renew only certificates with fewer days left (default: every one named by certs); a node with none is left alone" },
    min_ca_days = { type = "integer", min = 0, default = 30,
      help = "a CA with fewer days left stops the run: kubeadm certs renew cannot renew a CA" },
    min_free_mb = { type = "integer", min = 0, default = 50, help = "free space needed under /etc/kubernetes and the backup directory" },
    backup_dir = { type = "string", default = "/etc/kubernetes/engine-backup",
      help = "on each node: a dated copy of pki/ and the kubeconfigs goes here (never under manifests/)" },
    admin_conf = { type = "output",
      help = "write the renewed admin.conf here (this machine, mode 0600) and check it reaches the cluster" },
    restart_timeout = { type = "duration", default = "2m", help = "for the kubelet to stop, then start, one static pod" },
    ready_timeout = { type = "duration", default = "2m", help = "for /readyz and etcd's health after a restart" },
    max_raft_lag = { type = "integer", min = 0, default = 1000, help = "raft entries an etcd member may trail the leader by" },
    control_plane = { type = "string", default = "k8s-cp", help = "inventory group (or pattern) of the control-plane nodes" },
    timer = { type = "boolean", default = false,
      help = "install a weekly timer on each control-plane node that renews when a certificate is under timer_days" },
    timer_days = { type = "integer", min = 1, default = 30, help = "the timer renews when a certificate has fewer days left" },
    timer_weekday = { type = "enum", values = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" }, default = "Mon",
      help = "the day the timers fire" },
    timer_at = { type = "time", default = "03:00", help = "the first node's timer fires at HH:MM[:SS] (node time)" },
    timer_stagger = { type = "duration", default = "15m", help = "each next node's timer fires this much later" },
  },
  ---@param p params.cert_renew
  ---@param inv engine.Inventory
  run = function(p, inv)
    local cps = inv:hosts(p.control_plane)
    if #cps == 0 then fail("no hosts match %s", p.control_plane) end
    local wanted = renew.wanted(p.certs)

    -- 1. Precheck, read only: what is due on each node, the CAs, free space, the PKI itself, and
    -- whether this run's kubeconfig still reaches the API.
    local plan = step("precheck", function() return renew.precheck(p, cps, wanted) end,
      { probe = function() return false end })
    local api_ok, api_err, api_msg = k8s.ready()
    print(renew.plan_text(plan, cps))
    local due_nodes = {}
    for _, h in ipairs(cps) do if #plan[h.name].renew > 0 then due_nodes[#due_nodes + 1] = h end end
    if #due_nodes == 0 then
      print(string.format("\nNothing to renew: every certificate has %d days or more left.", p.under_days or 0))
      if p.timer then timers.install(p, cps) end
      return
    end
    local lease
    local function take_lease()
      if lease or http.dry_run() then return end
      local l, err, msg = cluster_lease.take("engine-certs")
      if not l then fail("the cluster lease %s", msg or err) end
      lease = l
    end
    local tunnel  -- <close>d at the end of the run: the API through a renewed node
    if api_ok then
      take_lease()
    else
      print(string.format("\nThe API refuses this run's kubeconfig (%s): the run works over SSH, and reaches the API " ..
        "through %s once that node serves renewed certificates.", tostring(api_msg or api_err), due_nodes[1].name))
      log.warn("the API is not reachable with this run's kubeconfig", { error = api_err, message = api_msg })
    end

    -- 2. One node at a time.
    local verified = {}
    fleet.each(due_nodes, { at_once = 1 }, function(h)
      local node_plan = plan[h.name]
      local backup = step("backup", function() return renew.backup(h, p) end)
      if backup and not http.dry_run() then log.info("backup of the node's PKI and kubeconfigs", { node = h.name, dir = backup }) end
      local renewed_at = step("renew", function() return renew.renew(h, node_plan) end,
        { probe = function() return renew.already_renewed(h, node_plan) end })
      for _, comp in ipairs(renew.restart_order(h, node_plan)) do
        step("restart " .. comp, function()
          local r, why = static_pod.restart(h, comp, { parking = p.backup_dir .. "/parked", timeout = p.restart_timeout })
          if not r then error(string.format("restarting %s: %s", comp, why), 0) end
          renew.wait_healthy(h, p, comp, node_plan.has_etcd)
          return r.after and r.after.created
        end, { probe = function() return renew.restarted_since(h, comp, renewed_at) end })
      end
      if not api_ok and not http.dry_run() and not tunnel then
        -- This node serves renewed certificates now: the API through it, with its admin.conf.
        tunnel = renew.api_through(h)
        take_lease()
      end
      verified[h.name] = step("verify", function() return renew.verify(h, p, node_plan) end, { probe = function() return false end })
      renew.kubelet(h, node_plan)
    end)

    -- 3. The renewed admin.conf, handed over and checked.
    if p.admin_conf then
      step("admin.conf", function() return renew.hand_over(due_nodes[1], p.admin_conf) end)
    elseif not api_ok then
      print("\nThis run's kubeconfig is refused: copy a renewed /etc/kubernetes/admin.conf from a control-plane node " ..
        "(or run again with -e admin_conf=PATH).")
    end
    print(renew.summary_text(plan, due_nodes, verified))
    if p.timer then timers.install(p, cps) end
    if lease then lease:release() end
    if tunnel then tunnel:close() end
  end,
}
