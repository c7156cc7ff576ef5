-- The checks of k8s-upgrade.lua: preflight (every failure named, nothing changed), the etcd
-- snapshot, the gate between workers, postflight.
local k8s = require "engine.k8s"
local etcd = require "engine.etcd"
local etcd_nodes = require "etcd_nodes"
local svc = require "std.etcd_service"
local certs = require "std.certs"
local fleet = require "engine.fleet"
local http = require "engine.http"
local gates = require "std.gates"
local removed_apis = require "std.removed_apis"
local semver = require "std.semver"
local kubeadm = require "std.kubeadm"
local facts = require "std.facts"
local k8s_repo = require "std.k8s_repo"

local M = {}

-- What the scheduler and the controller-manager cannot work without (seed 000: a deleted
-- ClusterRole left every new pod Pending).
local RBAC = {
  ["system:kube-scheduler"] = { { "list", "", "pods" }, { "watch", "", "pods" }, { "get", "", "nodes" },
    { "create", "", "pods/binding" }, { "update", "coordination.k8s.io", "leases" } },
  ["system:kube-controller-manager"] = { { "list", "", "pods" }, { "get", "", "secrets" },
    { "update", "coordination.k8s.io", "leases" } },
}

local function has(list, v)
  for _, x in ipairs(list or {}) do if x == v or x == "*" then return true end end
  return false
end

--- published(leader, target, bad): the target's kubeadm is in its minor's package repository (the
--- hosts' k8s_repo_url, else the one the leader's apt source names). kubeadm upgrade plan offers any
--- version it is given; a version nobody published was found only at the leader's apt-get install,
--- after its drain and its apt source switched. A repository the controller cannot read is said
--- (the nodes may reach it through a proxy the controller has not) and not held against the run.
function M.published(h, target, bad)
  local v = semver.parse(target)
  local url = k8s_repo.url(k8s_repo.template(h.vars, facts.apt_source(h)), v.major .. "." .. v.minor)
  local versions, why = k8s_repo.kubeadm_versions(url)
  if not versions then
    log.warn("could not check that kubeadm " .. target .. " is published", { repository = url, why = why })
  elseif not has(versions, semver.format(v)) then
    bad("kubeadm %s is not published in %s (its newest: %s)", target, url, versions[1] or "none")
  end
end

local function allows(role, verb, group, resource)
  for _, r in ipairs(role.rules or {}) do
    if has(r.verbs, verb) and has(r.apiGroups, group) and has(r.resources, resource) then return true end
  end
  return false
end

--- rbac() → list of problems with the control plane's own ClusterRoles and bindings.
function M.rbac()
  local out = {}
  for name, needs in pairs(RBAC) do
    local role, err, msg = k8s.get("clusterroles", name)
    local binding, berr, bmsg = k8s.get("clusterrolebindings", name)
    if not role then
      out[#out + 1] = string.format("ClusterRole %s: %s", name, err == "not found" and "missing" or (msg or err))
    else
      for _, n in ipairs(needs) do
        if not allows(role, n[1], n[2], n[3]) then
          out[#out + 1] = string.format("ClusterRole %s does not allow %s %s", name, n[1],
            (n[2] ~= "" and n[2] .. "/" or "") .. n[3])
        end
      end
    end
    if not binding then
      out[#out + 1] = string.format("ClusterRoleBinding %s: %s", name, berr == "not found" and "missing" or (bmsg or berr))
    else
      local bound = false
      for _, s in ipairs(binding.subjects or {}) do if s.kind == "User" and s.name == name then bound = true end end
      if (binding.roleRef or {}).name ~= name or not bound then
        out[#out + 1] = string.format("ClusterRoleBinding %s does not bind ClusterRole %s to user %s", name, name, name)
      end
    end
  end
  table.sort(out)
  return out
end

local function percent_used(h)
  local r = kubeadm.run(h, "df -P /", { read_only = true, what = "df -P /" })
  return tonumber(r.stdout:match("\n%S+%s+%d+%s+%d+%s+%d+%s+(%d+)%%"))
end

--- in_run(cps, workers) → {name = true}: the Nodes this run's hosts stand for.
function M.in_run(cps, workers)
  local names = {}
  for _, h in ipairs(cps) do names[h.name] = true end
  for _, h in ipairs(workers) do names[h.name] = true end
  return names
end

--- preflight(p, leader, cps, workers) → {from = "v1.33.1"}; raises with every failed check.
function M.preflight(p, leader, cps, workers)
  local problems = {}
  local function bad(fmt, ...) problems[#problems + 1] = string.format(fmt, ...) end
  local target = p.version
  local from
  local sv, err, msg = k8s.server_version()
  local nodes, nerr, nmsg = k8s.nodes()
  if not sv or not nodes then
    error("preflight: cannot read the cluster: " .. tostring(msg or nmsg or err or nerr), 0)
  end
  from = sv.git_version
  local kind, _, why = semver.upgrade_kind(from, target)
  local all_at_target = true
  for _, n in ipairs(nodes) do if n.kubelet_version ~= "v" .. target then all_at_target = false end end
  if not kind then
    bad("version: %s to %s is not allowed: %s", from, target, why)
  elseif kind == "same" and all_at_target then
    bad("version: the cluster already runs v%s everywhere; nothing to upgrade", target)
  elseif kind ~= "same" and kind ~= p.kind then
    bad("version: %s to v%s is a %s upgrade, but kind=%s was asked for", from, target, kind, p.kind)
  end
  -- Nodes: Ready, no pressure, quiet for quiet_hours, kubelets within the skew kubeadm allows.
  local cutoff = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - math.floor(p.quiet_hours * 3600))
  local by_name = {}
  local is_worker = {}
  for _, h in ipairs(workers) do is_worker[h.name] = true end
  local in_run = M.in_run(cps, workers)
  local CP = "node-role.kubernetes.io/control-plane"
  for _, n in ipairs(nodes) do
    by_name[n.name] = n
    -- A node no host of this run stands for (not in the inventory, or left out by --limit): a
    -- control-plane node would go on running the old API server and etcd beside the new, and
    -- kubeadm's procedure upgrades them all; a worker stays at its kubelet (the skew is checked
    -- below), and the postflight names it without failing.
    if not in_run[n.name] and n.labels[CP] ~= nil then
      bad("control-plane node %s is not a host of this run (the inventory's %s group, or --limit left it out); "
        .. "kubeadm's procedure upgrades every control-plane node", n.name, p.control_plane)
    elseif not in_run[n.name] then
      log.warn("worker is not a host of this run (not in the inventory's " .. p.workers .. " group, or --limit left it "
        .. "out): it stays at kubelet " .. tostring(n.kubelet_version), { node = n.name })
    end
    if not n.ready and p.skip_unreachable and is_worker[n.name] then
      -- skipped in the worker phase (skip_unreachable), not a stop
      log.warn("worker is NotReady: it will be skipped (skip_unreachable)", { node = n.name })
    elseif not n.ready then
      bad("node %s is NotReady", n.name)
    end
    if n.memory_pressure then bad("node %s has MemoryPressure", n.name) end
    if n.disk_pressure then bad("node %s has DiskPressure (runbooks/recover-disk.lua frees it)", n.name) end
    if n.ready and n.ready_since and n.ready_since > cutoff then
      if n.flapped_by then  -- an engine run restarted its kubelet (recover-static-pods, cert-renew, ...)
        log.info("node changed Ready state after an engine run restarted its kubelet: not counted for quiet_hours",
          { node = n.name, at = n.ready_since, run = n.flapped_by })
      elseif n.first_ready then  -- it joined (a new cluster, a node added): its first Ready is no flap
        log.info("node became Ready when it joined the cluster: not counted for quiet_hours",
          { node = n.name, at = n.ready_since })
      else
        bad("node %s changed Ready state at %s, within quiet_hours (%g h), not after an engine run's kubelet "
          .. "restart; if that flap is understood, run again with -e quiet_hours=0 (or fewer hours)",
          n.name, n.ready_since, p.quiet_hours)
      end
    end
    if n.unschedulable and n.cordoned_by ~= k8s.identity() and in_run[n.name] then
      bad("node %s is cordoned by %s; uncordon it or leave it out with --limit", n.name, n.cordoned_by or "an operator")
    end
    local kv = semver.parse(n.kubelet_version or "")
    local t = semver.parse(target)
    if not kv then
      bad("node %s reports no kubelet version", n.name)
    elseif semver.compare(kv, from) > 0 then
      bad("node %s: kubelet %s is newer than the API server %s (skew)", n.name, n.kubelet_version, from)
    elseif t.minor - kv.minor > 3 then
      bad("node %s: kubelet %s would be more than 3 minors behind v%s (skew)", n.name, n.kubelet_version, target)
    end
  end
  for _, h in ipairs(cps) do if not by_name[h.name] then bad("inventory host %s is not a node of the cluster", h.name) end end
  for _, h in ipairs(workers) do if not by_name[h.name] then bad("inventory host %s is not a node of the cluster", h.name) end end
  -- The groups against the nodes' roles (kubeadm labels its control-plane nodes): a worker in
  -- control_plane was otherwise reported as an etcd migration stopped midway on it.
  for _, h in ipairs(cps) do
    local n = by_name[h.name]
    if n and n.labels[CP] == nil then
      bad("inventory host %s (control_plane: %s) is not a control-plane node: its Node has no %s label", h.name, p.control_plane, CP)
    end
  end
  for _, h in ipairs(workers) do
    local n = by_name[h.name]
    if n and n.labels[CP] ~= nil then
      bad("inventory host %s (workers: %s) is a control-plane node (%s): it would be upgraded as a worker", h.name, p.workers, CP)
    end
  end
  local leads = false
  for _, h in ipairs(cps) do leads = leads or h == leader end
  if not leads then bad("the leader %s is not one of the control-plane hosts (control_plane: %s)", leader.name, p.control_plane) end
  -- APIs the target minor removes, with objects nothing else serves (Talos' upgrade-k8s check).
  if kind == "minor" then
    local gone, gerr, gmsg = removed_apis.check(from, target)
    if not gone then
      bad("removed APIs: cannot tell (%s)", tostring(gmsg or gerr))
    elseif #gone > 0 and not p.accept_removed_apis then
      for _, x in ipairs(gone) do bad("removed API: %s (accept_removed_apis=true goes on anyway)", removed_apis.describe(x)) end
    else
      for _, x in ipairs(gone) do log.warn("removed API accepted: " .. removed_apis.describe(x)) end
    end
  end
  -- Alerts, failing closed.
  local quiet, _, why_not = gates.no_firing_alerts { ignore = p.ignore_alerts }
  if not quiet then bad("alerts: %s", why_not) end
  if #p.wait_workloads > 0 then  -- the gate's workloads are ready before anything drains
    local ready, _, short = gates.workloads_ready(p.wait_workloads)
    if not ready then bad("%s", short) end
  end
  for _, x in ipairs(M.rbac()) do bad("rbac: %s (runbooks/recover-rbac.lua restores it)", x) end
  -- Control-plane nodes: disk, manifests, how etcd runs; the leader's kubeadm plan.
  local where = {}
  fleet.each(cps, { at_once = #cps, max_failures = #cps }, function(h)
    local ok, e = pcall(function()
      where[h.name] = etcd_nodes.where(h)
      local used = percent_used(h)
      if not used then
        bad("%s: cannot read the use of / from df", h.name)
      elseif used > p.max_disk_used then
        bad("%s: / is %d%% used (max_disk_used %d%%); free space first (runbooks/recover-disk.lua)",
          h.name, used, p.max_disk_used)
      end
      for _, x in ipairs(kubeadm.manifest_problems(h)) do bad("%s: %s (runbooks/recover-static-pods.lua)", h.name, x) end
      for _, c in ipairs(facts.missing_manifests(h)) do  -- kubeadm upgrade stops at the component it cannot find
        bad("%s: %s/%s.yaml is gone: the kubelet runs no %s here (runbooks/recover-static-pods.lua writes it again)",
          h.name, facts.MANIFESTS, c, c)
      end
      -- Certificates (seed 001): an expired one stops the control plane mid-upgrade. The same
      -- reading as runbooks/cert-check.lua.
      for _, f in ipairs(certs.files(h, { control_plane = true })) do
        if f.error then
          bad("%s: certificate %s (%s): %s", h.name, f.name, f.file, f.error)
        elseif f.cert.expired or f.cert.days_left < p.min_cert_days then
          bad("%s: certificate %s (%s) %s %s; renew first (runbooks/cert-renew.lua; runbooks/cert-check.lua lists them all)", h.name, f.name,
            f.file, f.cert.expired and "expired" or "expires", f.cert.not_after_text)
        end
      end
      if h == leader then
        local r = kubeadm.run(h, "kubeadm upgrade plan v" .. target, { read_only = true, timeout = 300,
          what = "kubeadm upgrade plan" })
        if not r.stdout:find("kubeadm upgrade apply v" .. target, 1, true) then
          bad("%s: kubeadm upgrade plan does not offer v%s", h.name, target)
        end
        M.published(h, target, bad)
      end
    end)
    if not ok then bad("%s", tostring(e)) end
  end)
  -- etcd where kubeadm-config says it is: a migration stopped midway is finished first.
  local cm, cerr, cmsg = k8s.get("configmaps", "kubeadm-config", { namespace = "kube-system" })
  local cc = cm and http.yaml_decode(((cm.data or {}).ClusterConfiguration) or "")
  if not cm then
    bad("kube-system/kubeadm-config: %s", tostring(cmsg or cerr))
  else
    for _, x in ipairs(etcd_nodes.split(where, cc)) do bad("%s", x) end
  end
  local external = etcd_nodes.external(cc)
  -- etcd: every member healthy, one leader, no alarms.
  local t, terr, tmsg = etcd.via_node(leader, { address = leader.vars.etcd_access_address })
  if not t then
    bad("etcd: cannot reach it through %s: %s", leader.name, tostring(tmsg or terr))
  else
    local health, herr, hmsg = etcd.cluster_health()
    if not health then
      bad("etcd: %s", tostring(hmsg or herr))
    elseif not health.healthy then
      bad("etcd: %s", etcd_nodes.said(health))
    end
    if health and external then  -- not kubeadm's to upgrade: said when it is behind the target's
      local running = {}
      for _, m in ipairs(health.members) do
        local st = m.healthy and m.endpoint and etcd.status(m.endpoint)
        if st and st.version then running[#running + 1] = st.version end
      end
      local behind = svc.behind(running, "v" .. target)
      if behind then log.warn(behind) end
    end
    t:close()
  end
  if #problems > 0 then
    error("preflight failed; nothing was changed:\n  - " .. table.concat(problems, "\n  - "), 0)
  end
  return { from = from }
end

--- snapshot(p, leader) → {path, size, sha256, revision}: taken through the leader, verified.
M.snapshot = etcd_nodes.snapshot  -- the etcd runbooks' own, through a tunnel to the leader
M.snapshot_kept = etcd_nodes.kept

--- gate(p, may_skip) → true | nil, why: between workers, every node Ready (but those may_skip(name)
--- says the rollout will skip at their turn: skip_unreachable's workers not started yet), the
--- wait_workloads all ready, and no alert firing.
function M.gate(p, may_skip)
  local nodes, err, msg = k8s.nodes()
  if not nodes then return nil, "cannot read the nodes: " .. tostring(msg or err) end
  for _, n in ipairs(nodes) do
    if not n.ready and not (may_skip and may_skip(n.name)) then return nil, "node " .. n.name .. " is NotReady" end
  end
  if #p.wait_workloads > 0 then
    local ready, _, short = gates.workloads_ready(p.wait_workloads)
    if not ready then return nil, short end
  end
  return gates.no_firing_alerts { ignore = p.ignore_alerts }
end

local function tag(image) return tostring(image):match(":([^:/]+)$") end

--- postflight(p, leader, target, in_run): raises with every check that fails. A worker no host
--- of the run stands for (in_run, as the preflight warned) is named, not failed, at an older kubelet.
function M.postflight(p, leader, target, in_run)
  if http.dry_run() then return end
  local problems = {}
  local function bad(fmt, ...) problems[#problems + 1] = string.format(fmt, ...) end
  local v = "v" .. target
  for _, n in ipairs(assert(k8s.nodes())) do
    if n.kubelet_version ~= v and not in_run[n.name] then
      log.warn("worker left out of this run: it runs kubelet " .. tostring(n.kubelet_version) .. ", not " .. v,
        { node = n.name })
    elseif n.kubelet_version ~= v then
      bad("node %s runs kubelet %s", n.name, tostring(n.kubelet_version))
    end
    if not n.ready then bad("node %s is NotReady", n.name) end
    if n.unschedulable and n.cordoned_by == k8s.identity() then bad("node %s is still cordoned by this run", n.name) end
  end
  local sv = k8s.server_version()
  if not sv or sv.git_version ~= v then bad("the API server reports %s", sv and sv.git_version or "nothing") end
  local cm = k8s.get("configmaps", "kubeadm-config", { namespace = "kube-system" })
  local cc = cm and http.yaml_decode(cm.data.ClusterConfiguration or "")
  if not cc or cc.kubernetesVersion ~= v then
    bad("kubeadm-config: kubernetesVersion is %s", cc and tostring(cc.kubernetesVersion) or "unreadable")
  end
  local want = {}
  local r = kubeadm.run(leader, "kubeadm config images list --kubernetes-version " .. v, { read_only = true,
    what = "kubeadm config images list" })
  for image in r.stdout:gmatch("%S+") do
    local name = image:match("/([^/:]+):")
    if name then want[name] = image end
  end
  local dns = k8s.get("deployments", "coredns", { namespace = "kube-system" })
  local dns_image = dns and dns.spec.template.spec.containers[1].image
  if dns_image ~= want.coredns then bad("CoreDNS runs %s, kubeadm expects %s", tostring(dns_image), tostring(want.coredns)) end
  local proxy = k8s.get("daemonsets", "kube-proxy", { namespace = "kube-system" })
  local proxy_image = proxy and proxy.spec.template.spec.containers[1].image
  if tag(proxy_image) ~= v then bad("kube-proxy runs %s, not %s", tostring(proxy_image), v) end
  local pods = assert(k8s.list("pods", { all_namespaces = true }))
  local total, ready = 0, 0
  for _, pod in ipairs(pods) do
    local phase = (pod.status or {}).phase
    if phase ~= "Succeeded" and phase ~= "Failed" then
      total = total + 1
      for _, c in ipairs((pod.status or {}).conditions or {}) do
        if c.type == "Ready" and c.status == "True" then ready = ready + 1 end
      end
    end
  end
  local ratio = total > 0 and ready / total or 1
  if ratio < p.pod_ready_ratio then
    bad("only %d of %d pods are ready (%.2f < pod_ready_ratio %.2f)", ready, total, ratio, p.pod_ready_ratio)
  end
  log.info("postflight", { pods_ready = ready, pods = total, coredns = dns_image, kube_proxy = proxy_image })
  if #problems > 0 then error("postflight failed:\n  - " .. table.concat(problems, "\n  - "), 0) end
end

return M
