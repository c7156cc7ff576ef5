-- A new kubeadm cluster on an external etcd run by systemd on its control-plane nodes (seed 003,
-- flow B): a precheck that refuses nodes that already belong to something, etcd's PKI made on the
-- leader and handed out (temporary files removed: IR-8), etcd installed and started on every
-- control-plane node as a new cluster, a cluster-formed gate, kubeadm init on the leader with the
-- external etcd (v1beta4), the control-plane certificates shared, then kubeadm join --control-plane
-- one node at a time behind an etcd readiness gate, and the workers.
--   engine run runbooks/etcd-bootstrap.lua -i inventory.yml -e version=3.5.16
local etcd = require "engine.etcd"
local fleet = require "engine.fleet"
local http = require "engine.http"
local k8s = require "engine.k8s"
local ops = require "std.ops"
local remote = require "std.remote"
local svc = require "std.etcd_service"
local systemd = require "std.systemd"
local nodes = require "etcd_nodes"
local boot = require "etcd_bootstrap"
local groups = require "std.groups"
local semver = require "std.semver"
local text = require "std.text"

local function rerun() return false end

return runbook {
  name = "etcd-bootstrap",
  summary = "A new kubeadm cluster on an external etcd under systemd: etcd PKI, etcd, kubeadm init and joins",
  params = nodes.params {
    version = { type = "string", required = true, pattern = "^v?%d+%.%d+%.%d+$", help = "etcd version, e.g. 3.5.16" },
    kubernetes_version = { type = "string", pattern = "^v?%d+%.%d+%.%d+$", help = "default: the leader's kubeadm" },
    control_plane = { type = "string", default = "k8s-cp", help = "inventory group of the control-plane nodes (the etcd members)" },
    leader = { type = "string", default = "k8s-cp-leader", help = "inventory group whose host runs kubeadm init (an inventory without the group: the first control-plane host)" },
    workers = { type = "string", default = "k8s-worker", help = "inventory group of the workers (an inventory without the group: none)" },
    control_plane_endpoint = { type = "string", help = "HOST:PORT of the API (default: the leader's address:6443)" },
    pod_subnet = { type = "string", default = "10.244.0.0/16" },
    service_subnet = { type = "string", default = "10.96.0.0/12" },
    cluster_token = { type = "string", default = "engine-etcd", pattern = "^[%w%-]+$", help = "etcd's initial-cluster-token" },
    cert_days = { type = "integer", min = 1, default = 365, help = "etcd's leaf certificates" },
    ca_days = { type = "integer", min = 1, default = 3650, help = "etcd's CA" },
    user = { type = "string", default = "etcd", pattern = "^[a-z_][a-z0-9_%-]*$", help = "the service's user and group (a system user)" },
    kubeadm_config = { type = "string", default = "/etc/kubernetes/engine-kubeadm-init.yaml" },
    join_timeout = { type = "duration", default = "10m", help = "for kubeadm init/join and the node to be Ready" },
    workers_at_once = { type = "amount", default = "2", pattern = "^0*[1-9]%d*%%?$",
      help = "workers joined at once: a count from 1, or a percentage of the workers (\"10%\")" },
  },
  ---@param p params.etcd_bootstrap
  ---@param inv engine.Inventory
  run = function(p, inv)
    p.version = semver.format(p.version)  -- etcd tags its releases v3.5.16; its binaries say 3.5.16
    local cps, workers = inv:hosts(p.control_plane), groups.optional(inv, p.workers, "k8s-worker")
    if #cps == 0 then fail("inventory group %s has no hosts", p.control_plane) end
    local leader = groups.optional(inv, p.leader, "k8s-cp-leader")[1] or cps[1]
    p.download_url = p.download_url or leader.vars.etcd_download_url or svc.DOWNLOAD_URL
    local others = {}
    for _, h in ipairs(cps) do if h ~= leader then others[#others + 1] = h end end

    local facts = step("precheck", function() return boot.precheck(p, cps, workers, leader) end, { probe = rerun })
    log.info("precheck passed", { etcd = p.version, kubernetes = facts.kubernetes })

    -- etcd's PKI, made once on the leader when a node lacks its files (never journaled: keys),
    -- each node's files written to it.
    local need = false
    for _, h in ipairs(cps) do if not boot.pki_in_place().holds(h) then need = true end end
    local made = (need and not http.dry_run()) and boot.pki(p, cps, leader) or {}
    fleet.each(cps, { at_once = #cps }, function(h) ops.step(h, boot.pki_in_place(function() return made end)) end)

    -- etcd on every control-plane node, a new cluster, started together (each start waits for quorum).
    fleet.each(cps, { at_once = #cps }, function(h)
      local flags, order = boot.env_flags(h, cps, p)
      ops.step(h, svc.release(p.version, { url = p.download_url, sha256 = facts.sha256 }))
      ops.step(h, svc.user(p.user))
      ops.step(h, svc.keys_readable({ "/etc/kubernetes/pki/etcd/server.key", "/etc/kubernetes/pki/etcd/peer.key" }, p.user))
      ops.step(h, boot.data_dir(p.user))
      ops.step(h, systemd.file(svc.ENV_FILE, svc.env_text(flags, order), { name = "etcd environment " .. svc.ENV_FILE }))
      ops.step(h, systemd.unit(svc.UNIT, svc.unit_text { user = p.user }))
      ops.step(h, systemd.enabled(svc.UNIT))
      ops.step(h, systemd.started(svc.UNIT))
    end)
    step("etcd cluster formed", function()
      if http.dry_run() then return end
      local ok, why = nodes.gate(function()
        local health, err, msg = etcd.cluster_health(nodes.endpoints(cps))
        if not health then return nil, tostring(msg or err) end
        if not health.healthy then return nil, table.concat(health.problems, "; ") end
        if #health.members ~= #cps then return nil, #health.members .. " members, not " .. #cps end
        local match, _, mmsg = etcd.members_match(cps)
        if not match then return nil, mmsg end
        return true
      end, p.health_passes, p.health_interval, p.health_timeout)
      if not ok then error("etcd did not form: " .. tostring(why), 0) end
    end, { probe = rerun })

    -- kubeadm init on the leader, on the external etcd.
    local config = boot.kubeadm_config(p, cps, leader, facts)
    ops.step(leader, {
      name = "kubeadm init",
      holds = function(h)
        return systemd.read(h, "/etc/kubernetes/admin.conf") ~= nil, "no /etc/kubernetes/admin.conf"
      end,
      apply = function(h)
        print("kubeadm config (" .. p.kubeadm_config .. " on " .. h.name .. "):\n" .. config)
        if not http.dry_run() then
          local ok, err, msg = h:write_file(p.kubeadm_config, config, { mode = "0600", sudo = true })
          if not ok then error(string.format("%s: writing %s: %s (%s)", h.name, p.kubeadm_config, err, msg or ""), 0) end
        end
        remote.must(h, "kubeadm init --config " .. remote.quote(p.kubeadm_config), { what = "kubeadm init", timeout = p.join_timeout,
          stream = true })
      end,
    })
    -- From here the API is reached with the admin.conf kubeadm init wrote (read into memory), unless
    -- the run was given a kubeconfig.
    if not http.dry_run() and not k8s.server_version() then
      local conf = remote.must(leader, "cat /etc/kubernetes/admin.conf", { read_only = true, what = "reading admin.conf" }).stdout
      log.secret(conf)
      k8s.configure { kubeconfig_data = conf }
    end
    local lease = nodes.lease()
    if not http.dry_run() then
      local n, err, msg = k8s.wait_node(leader, { ready = true, timeout = p.join_timeout })
      if not n then fail("%s: not Ready after kubeadm init (%s)", leader.name, tostring(msg or err)) end
    end

    -- The certificates every control-plane node shares, from the leader (kubeadm's manual way).
    local shared
    fleet.each(others, { at_once = #cps }, function(h)
      ops.step(h, {
        name = "control-plane certificates",
        holds = function(x)
          local r = remote.must(x, "cd /etc/kubernetes/pki && sha256sum " .. table.concat(boot.SHARED, " ") .. " 2>/dev/null || true",
            { read_only = true, what = "sha256sum of the shared certificates" })
          local l = remote.must(leader, "cd /etc/kubernetes/pki && sha256sum " .. table.concat(boot.SHARED, " "),
            { read_only = true, what = "sha256sum of the leader's shared certificates" })
          return r.stdout == l.stdout, "the shared certificates differ from the leader's"
        end,
        apply = function(x)
          if http.dry_run() then return end
          shared = shared or remote.read_files(leader, "/etc/kubernetes/pki", boot.SHARED, { what = "reading the shared certificates" })
          for _, f in ipairs(shared) do
            log.secret(f.body)
            local ok, err, msg = x:write_file("/etc/kubernetes/pki/" .. f.file, f.body,
              { mode = f.file:match("%.key$") and "0600" or "0644", sudo = true })
            if not ok then error(string.format("%s: writing %s: %s (%s)", x.name, f.file, err, msg or ""), 0) end
          end
        end,
      })
    end)
    fleet.each(others, { at_once = 1 }, function(h) ops.step(h, boot.joined(p, leader, "control-plane")) end)
    if #workers > 0 then
      fleet.each(workers, { at_once = p.workers_at_once }, function(h) ops.step(h, boot.joined(p, leader, "worker")) end)
    end

    step("postcheck", function()
      if http.dry_run() then return end
      local bad = {}
      for _, h in ipairs(cps) do
        local ok, why = boot.node_ready(h)
        if not ok then bad[#bad + 1] = why end
        if not systemd.active(h, svc.UNIT) then bad[#bad + 1] = h.name .. ": etcd.service is not active" end
      end
      for _, h in ipairs(workers) do
        local ok, why = boot.node_ready(h)
        if not ok then bad[#bad + 1] = why end
      end
      local cm = k8s.get("configmaps", "kubeadm-config", { namespace = "kube-system" })
      local cc = cm and http.yaml_decode(cm.data.ClusterConfiguration)
      if not (cc and cc.etcd and cc.etcd.external) then bad[#bad + 1] = "kubeadm-config does not name the external etcd" end
      local health = etcd.cluster_health(etcd.endpoints())
      if not health or not health.healthy then bad[#bad + 1] = "etcd: " .. (health and table.concat(health.problems, "; ") or "?") end
      if #bad > 0 then error("postcheck: " .. table.concat(bad, "; "), 0) end
    end, { probe = rerun })
    if lease then lease:release() end

    local lines = { { "NODE", "ROLE", "STATUS", "ETCD" } }
    for _, h in ipairs(cps) do
      local ok = boot.node_ready(h)
      lines[#lines + 1] = { h.name, "control-plane", ok and "Ready" or "NotReady", "member " .. nodes.member_name(h) }
    end
    for _, h in ipairs(workers) do
      local ok = boot.node_ready(h)
      lines[#lines + 1] = { h.name, "worker", ok and "Ready" or "NotReady", "-" }
    end
    print((http.dry_run() and "\nDry run: nothing was changed.\n" or "\nThe cluster is up on its external etcd:\n") ..
      text.columns(lines))
  end,
}
