-- The checks of runbooks/doctor.lua, each read only: what the seeds got wrong, looked for on every
-- node and in the cluster (etcd's own in doctor_etcd). A finding is doctor_finding's {name,
-- severity, node, evidence, see, runbook}.
local certs = require "std.certs"
local doctor_etcd = require "doctor_etcd"
local etcd_nodes = require "etcd_nodes"
local findings = require "doctor_finding"
local facts = require "std.facts"
local http = require "engine.http"
local k8s = require "engine.k8s"
local kubeadm = require "std.kubeadm"
local policy = require "std.rbac_policy"
local prometheus = require "engine.prometheus"
local remote = require "std.remote"
local semver = require "std.semver"

local finding, section = findings.add, findings.section

local M = {}
-- Where a stopped run is listed: on the machine that ran it, or in the cluster for a Job's
-- (deploy/upgrade-job.yaml keeps its runs under k8s://engine).
local RUNS = "engine runs (a Job's run: engine runs --state-dir k8s://engine)"

M.SEVERITIES = { "critical", "warning", "info" }


local function minor(v)
  local s = semver.parse(tostring(v or ""):gsub("^v", ""):match("^[%d%.]+") or "")
  return s and s.minor, s
end

--- cluster(p, out, hosts): the API's view: versions, nodes, RBAC, PDBs, kubeadm-config.
--- cps: the control-plane nodes, through which the API is tried when the kubeconfig's route fails.
--- Returns the server version (nil: no API) and the tunnel the rest of the run goes through.
function M.cluster(p, out, hosts, cps)
  local sv, err, msg = k8s.server_version()
  local route, through
  if not sv then
    -- Seed 002: the API servers were fine, the controller's route to them was not. Through a node
    -- (a tunnel changes nothing) the doctor tells the two apart and goes on examining.
    local node
    route, node, through = kubeadm.api_through(cps)
    if route then
      sv = k8s.server_version()
      finding(out, "api-unreachable", "critical", nil, string.format("the API does not answer through the kubeconfig (%s), " ..
        "but %s's own API server does, through SSH: the route to the API is cut (firewall, load balancer), " ..
        "not the API servers; examined through %s", tostring(msg or err), node, node),
        "kubectl get --raw /readyz; ssh -L 6443:127.0.0.1:6443 " .. node,
        "the route (a firewall rule, the load balancer's health checks); meanwhile runbooks reach the API " ..
        "through a node (docs/recovery.md)")
    end
  end
  if not sv then
    -- Seed 001: when the API servers refuse the kubeconfig's own certificate (an expired copy of
    -- admin.conf), renewing the nodes is not enough: the operator's file needs the renewed one.
    local own = through and through:find("refused the client certificate", 1, true)
    finding(out, "api-unreachable", "critical", nil, "the API does not answer: " .. tostring(msg or err) ..
      (through and ("; through each node's SSH: " .. through) or ""),
      "kubectl get --raw /readyz", own and "runbooks/cert-renew.lua -e admin_conf=PATH (this kubeconfig's own client " ..
        "certificate is refused: the run writes the renewed admin.conf there)"
        or "runbooks/cert-renew.lua (expired certificates), runbooks/recover-disk.lua (a full disk)")
    return nil, route
  end
  local api_minor = minor(sv.git_version)
  local nodes, nerr, nmsg = k8s.nodes()
  if not nodes then
    local said = tostring(nmsg or nerr)
    -- kube-apiserver answers, but its etcd does not (no quorum: a one-node control plane's etcd.yaml
    -- moved out, members down): the etcd findings below say which.
    local etcd_down = said:find("etcdserver:", 1, true) and not said:find("database space exceeded", 1, true)
    finding(out, "api-unreachable", "critical", nil, "listing nodes: " .. said .. (etcd_down and
      ": the API servers answer, but etcd does not give them the objects" or ""), "kubectl get nodes",
      etcd_down and "etcd (the etcd and manifest findings here)" or nil)
    return sv, route
  end
  local known = {}
  for _, n in ipairs(nodes) do
    known[n.name] = true
    if not n.ready then
      finding(out, "node-not-ready", "critical", n.name, "Ready is not True" .. (n.ready_since and (" since " .. n.ready_since) or ""),
        "kubectl describe node " .. n.name, "journalctl -u kubelet on the node")
    end
    for cond, word in pairs({ memory_pressure = "MemoryPressure", disk_pressure = "DiskPressure" }) do
      if n[cond] then finding(out, "node-pressure", "warning", n.name, word .. " is True", "kubectl describe node " .. n.name,
        word == "DiskPressure" and "runbooks/recover-disk.lua" or nil) end
    end
    local pid = nil
    for _, c in ipairs(((n.object or {}).status or {}).conditions or {}) do if c.type == "PIDPressure" then pid = c.status end end
    if pid == "True" then finding(out, "node-pressure", "warning", n.name, "PIDPressure is True", "kubectl describe node " .. n.name) end
    local km = minor(n.kubelet_version)
    if not km then
      finding(out, "version-skew", "warning", n.name, "the node reports no kubelet version", "kubectl get nodes -o wide")
    elseif api_minor and km > api_minor then
      finding(out, "version-skew", "critical", n.name, string.format("kubelet %s is newer than the API server %s",
        n.kubelet_version, sv.git_version), "kubectl get nodes -o wide", "runbooks/k8s-upgrade.lua")
    elseif api_minor and api_minor - km > 3 then
      finding(out, "version-skew", "critical", n.name, string.format("kubelet %s is more than 3 minors behind the API server %s",
        n.kubelet_version, sv.git_version), "kubectl get nodes -o wide", "runbooks/k8s-upgrade.lua")
    end
  end
  for _, h in ipairs(hosts) do
    if not known[h.name] then
      finding(out, "node-missing", "warning", h.name, "an inventory host with no Node in the cluster", "kubectl get nodes")
    end
  end
  -- kubeadm-config: the version kubeadm believes the cluster runs (seed 000's half-done upgrade).
  local cm, cerr, cmsg = k8s.get("configmaps", "kubeadm-config", { namespace = "kube-system" })
  if not cm then
    finding(out, "kubeadm-config", "warning", nil, "kube-system/kubeadm-config: " .. tostring(cmsg or cerr),
      "kubectl -n kube-system get cm kubeadm-config -o yaml")
  else
    local cc = http.yaml_decode(((cm.data or {}).ClusterConfiguration) or "")
    local kv = type(cc) == "table" and cc.kubernetesVersion
    if kv and minor(kv) and api_minor and (minor(kv) ~= api_minor or kv:gsub("^v", "") ~= sv.git_version:gsub("^v", "")) then
      finding(out, "version-skew", "warning", nil, string.format("kubeadm-config says kubernetesVersion %s, the API server runs %s",
        kv, sv.git_version), "kubectl -n kube-system get cm kubeadm-config -o yaml", "runbooks/k8s-upgrade.lua (resume it)")
    end
  end
  -- RBAC of the control plane's own components, asked as the API server decides (seed 000).
  for _, c in ipairs({ "kube-scheduler", "kube-controller-manager" }) do
    local ok, denied = pcall(policy.denied, c, policy.NEEDS[c])
    if not ok then
      finding(out, "rbac", "warning", nil, tostring(denied), "kubectl auth can-i --list --as " .. policy.COMPONENTS[c].user)
    elseif #denied > 0 then
      local verb, resource = denied[1]:match("^(%S+) (%S+)")
      finding(out, "rbac-missing", "critical", nil, string.format("%s is refused %d of the accesses it cannot work without: %s",
        policy.COMPONENTS[c].user, #denied, table.concat(denied, ", ")),
        string.format("kubectl auth can-i %s %s --as %s", verb, resource, policy.COMPONENTS[c].user), "runbooks/recover-rbac.lua")
    end
  end
  -- kubeadm's admin.conf holds its rights through this binding since v1.29 (kubeadm#3308).
  if api_minor and api_minor >= 29 then
    local b, berr, bmsg = k8s.get("clusterrolebindings", policy.CLUSTER_ADMINS.binding)
    if not b and berr ~= "not found" then  -- not readable by this identity: unknown, not missing
      finding(out, "rbac", "warning", nil, string.format("ClusterRoleBinding %s could not be read (%s): whether admin.conf " ..
        "(group %s) keeps its rights is not checked", policy.CLUSTER_ADMINS.binding, tostring(bmsg or berr), policy.CLUSTER_ADMINS.group),
        "kubectl auth can-i get clusterrolebinding/" .. policy.CLUSTER_ADMINS.binding)
    elseif not b then
      finding(out, "rbac-missing", "critical", nil, string.format("ClusterRoleBinding %s: missing: admin.conf (group %s) has no rights",
        policy.CLUSTER_ADMINS.binding, policy.CLUSTER_ADMINS.group),
        "kubectl get clusterrolebinding " .. policy.CLUSTER_ADMINS.binding, "runbooks/recover-rbac.lua (breaks glass with super-admin.conf)")
    end
  end
  -- PDBs that allow no disruption now: a drain would block on them (seed 001's upgrade stalled).
  local pdbs = k8s.list("poddisruptionbudgets", { namespace = "" })
  for _, pdb in ipairs(pdbs or {}) do
    local st = pdb.status or {}
    if (st.expectedPods or 0) > 0 and (st.disruptionsAllowed or 0) == 0 then
      finding(out, "pdb-blocks-drain", "warning", nil, string.format("PodDisruptionBudget %s/%s allows no disruption (%d of %d pods healthy, %d desired)",
        pdb.metadata.namespace, pdb.metadata.name, st.currentHealthy or 0, st.expectedPods or 0, st.desiredHealthy or 0),
        "kubectl get pdb -A", "k8s-upgrade.lua's delete_blocked_pods, or scale the workload")
    end
  end
  return sv, route
end

-- df -P / df -Pi output → {mount = percent}
local function percents(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local pct, mount = line:match("^%S+%s+%d+%s+%d+%s+%d+%s+(%d+)%%%s+(%S+)")
    if pct then out[mount] = tonumber(pct) end
  end
  return out
end


-- The kubelet's client certificate is its own (rotated by the kubelet, replaced by
-- kubelet-cert-renew when that failed); the others are kubeadm's.
local KUBELET = { ["kubelet.conf"] = true, ["kubelet-client"] = true }

-- One certificate's finding, if any: unreadable, expired, or under cert_days (CAs: ca_days).
local function certificate(p, h, f, out)
  local c = f.cert
  local fix = KUBELET[f.name] and "runbooks/kubelet-cert-renew.lua" or
    (c and c.is_ca) and "kubeadm's manual CA rotation (docs/certs.md)" or "runbooks/cert-renew.lua"
  local see = KUBELET[f.name] and "runbooks/cert-check.lua; journalctl -u kubelet" or "kubeadm certs check-expiration"
  if f.error then
    finding(out, "certificate", "warning", h.name, string.format("%s (%s): %s", f.name, f.file, f.error), see)
  elseif c.expired then
    finding(out, "certificate-expired", "critical", h.name, string.format("%s (%s) expired %s%s", f.name, f.file, c.not_after_text,
      KUBELET[f.name] and ": the kubelet cannot start with it" or ""), see, fix)
  elseif c.days_left < (c.is_ca and p.ca_days or p.cert_days) then
    finding(out, "certificate-expiring", c.days_left < 7 and "critical" or "warning", h.name,
      string.format("%s (%s) expires in %d days (%s)%s", f.name, f.file, c.days_left, c.not_after_text,
        KUBELET[f.name] and ": the kubelet rotates it itself while it runs; if it has not" or ""),
      see, KUBELET[f.name] and (fix .. " -e under_days=" .. p.cert_days) or fix)
  end
end

--- node(p, h, is_cp, sv, out) → the kube-apiserver's version its manifest names (control-plane
--- nodes; nil when its image has no vX.Y.Z tag): disk and inodes, package skew; on control-plane
--- nodes the static-pod manifests and what their mirror pods run, and the certificates.
function M.node(p, h, is_cp, sv, out)
  local r = remote.must(h, "echo '## df'; df -P / /var; echo '## dfi'; df -Pi / /var; echo '## du'; " ..
    "du -x -d 1 /var 2>/dev/null | sort -rn | head -n 6; echo '## apt'; apt-cache policy kubectl kubeadm kubelet 2>/dev/null; echo '## end'",
    { read_only = true, what = "df, du and apt-cache policy", timeout = 30 })
  local text = r.stdout
  local top = {}
  for size, dir in section(text, "du"):gmatch("(%d+)%s+(%S+)") do
    if dir ~= "/var" then top[#top + 1] = string.format("%s %d MiB", dir, tonumber(size) // 1024) end
  end
  for what, pcts in pairs({ space = percents(section(text, "df")), inodes = percents(section(text, "dfi")) }) do
    for mount, pct in pairs(pcts) do
      if pct >= p.disk_warn then
        local sev = pct >= p.disk_critical and "critical" or "warning"
        finding(out, what == "space" and "disk-full" or "inodes-full", sev, h.name,
          string.format("%s is %d%% used (%s)%s", mount, pct, what, #top > 0 and ("; biggest under /var: " .. table.concat(top, ", ")) or ""),
          what == "space" and ("df -h " .. mount .. "; du -xh -d 1 /var | sort -h") or ("df -i " .. mount),
          "runbooks/recover-disk.lua")
      end
    end
  end
  local api_minor = sv and minor(sv.git_version)
  local apt = section(text, "apt")
  for pkg, v in apt:gmatch("(%S+):%s*\n%s*Installed:%s*(%S+)") do
    local m = minor(v)
    if pkg == "kubectl" and m and api_minor and math.abs(m - api_minor) > 1 then
      finding(out, "version-skew", "warning", h.name, string.format("kubectl %s is more than one minor from the API server %s",
        v, sv.git_version), "apt-cache policy kubectl", "runbooks/k8s-upgrade.lua")
    elseif pkg == "kubeadm" and m and api_minor and m < api_minor and is_cp then
      finding(out, "version-skew", "warning", h.name, string.format("kubeadm %s is older than the API server %s", v, sv.git_version),
        "apt-cache policy kubeadm", "runbooks/k8s-upgrade.lua")
    end
  end
  if not is_cp then  -- a worker's own certificate: the kubelet's (a control plane's is read below, with kubeadm's)
    for _, f in ipairs(certs.files(h, {})) do certificate(p, h, f, out) end
    return
  end
  for _, x in ipairs(facts.manifest_problems(h)) do
    finding(out, "stray-manifest", "critical", h.name, x, "ls -l /etc/kubernetes/manifests", "runbooks/recover-static-pods.lua")
  end
  local pods = facts.static_pods(h)
  for _, c in ipairs(facts.missing_manifests(h, pods)) do
    finding(out, "manifest-missing", "critical", h.name, string.format("%s/%s.yaml is gone: the kubelet runs no %s here",
      facts.MANIFESTS, c, c), "ls -l /etc/kubernetes/manifests", "runbooks/recover-static-pods.lua")
  end
  local apiserver
  for _, m in ipairs(pods) do
    if m.file == "kube-apiserver.yaml" then apiserver = facts.image_version(m.image) end
  end
  if sv then
    local running = facts.running_images(h)
    for _, m in ipairs(pods) do
      local run = m.name and running and running[m.name]
      if run and m.image and run.image ~= m.image and m.file == m.name .. ".yaml" then
        finding(out, "static-pod-image", "warning", h.name, string.format("%s names %s, its mirror pod runs %s",
          facts.MANIFESTS .. "/" .. m.file, m.image, run.image), "crictl ps; kubectl -n kube-system get pod " .. m.name .. "-" .. h.name .. " -o wide",
          "runbooks/recover-static-pods.lua")
      end
    end
  end
  local served = {}
  for _, s in ipairs(certs.served(h, { timeout = 3 })) do served[s.file or s.name] = s end
  for _, f in ipairs(certs.files(h, { control_plane = true })) do
    certificate(p, h, f, out)
    local c = f.cert
    local s = served[f.file]
    if s and s.cert and not c.expired and s.cert.serial ~= c.serial then
      finding(out, "certificate-not-served", "warning", h.name, string.format("%s serves serial %s, %s holds %s: its component has not restarted",
        s.endpoint, s.cert.serial, f.file, c.serial), "runbooks/cert-check.lua", "runbooks/cert-renew.lua")
    end
  end
  return apiserver
end

--- control_plane(cp, out, api): the control-plane nodes (host → {etcd = etcd_nodes.where, apiserver =
--- its version, etcd_data = a member's data there, etcd_copies = its manifest's moved copies when
--- not, etcd_lost = the data directory of a static Pod's member that holds no data) against
--- kubeadm-config. A migration of etcd to systemd stopped midway works today and breaks kubeadm's
--- next upgrade; API servers at different versions, or not at kubeadm-config's kubernetesVersion,
--- are an upgrade stopped midway (with no Pushgateway to say so). api: the API answered; without it
--- (or kubeadm-config) only the gone etcd.yaml is told, from the member's data left on the node, and
--- a member's lost data from its data directory. etcd_healthy: doctor_etcd.cluster's count of healthy
--- members (a member crash-looping on lost data runs, and is not one a replacement can count on),
--- else nil. hidden: the control-plane nodes --limit hides (their members are not counted, so
--- neither replace nor restore is told).
function M.control_plane(cp, out, api, etcd_healthy, hidden)
  if next(cp) == nil then return end
  local cm = api and k8s.get("configmaps", "kubeadm-config", { namespace = "kube-system" }) or nil
  local cc = cm and http.yaml_decode(((cm.data or {}).ClusterConfiguration) or "")
  local where, by_version, gone = {}, {}, {}
  for name, c in pairs(cp) do
    -- A manifest gone with no migration begun is its own finding, on its node.
    local stacked = cm and not etcd_nodes.external(cc) or (not cm and (c.etcd_data or c.etcd_local))
    if c.etcd == "missing" and stacked then gone[#gone + 1] = name else where[name] = c.etcd end
    if c.apiserver then
      by_version[c.apiserver] = by_version[c.apiserver] or {}
      table.insert(by_version[c.apiserver], name)
    end
  end
  table.sort(gone)
  for _, name in ipairs(gone) do
    local c = cp[name]
    if c.etcd_data == false then
      -- Its data gone too: a manifest written now would start a new, empty etcd (recover-static-pods
      -- refuses); the member is replaced, from its own manifest put back.
      -- With no copy left, etcd-member-replace writes it from a peer's (kubeadm writes every
      -- stacked member's from one template). Without a quorum of others to join it to (a one-node
      -- control plane), only a restore from a snapshot brings the cluster back.
      local copies, peers = c.etcd_copies or {}, {}
      for other, o in pairs(cp) do
        if other ~= name and o.etcd == "static" and not o.etcd_lost then peers[#peers + 1] = other end
      end
      table.sort(peers)
      local found = #copies > 0 and ("found " .. table.concat(copies, ", ")) or "no copy found under /etc/kubernetes"
      local verdict, said = doctor_etcd.after_loss(cp, name, etcd_healthy, hidden)
      local fix
      if verdict == "restore" then
        said = said .. ": restore every member from a snapshot, with the manifest's copy (" .. found .. ")"
        fix = "runbooks/etcd-restore.lua -e snapshot=FILE -e manifest=" .. (#copies == 1 and copies[1] or "COPY")
      elseif verdict ~= "unknown" then
        local how = #copies > 0 and ("put the manifest back by hand (" .. found .. "), then replace the member") or
          peers[1] and (found .. ": replace the member, its manifest written from " .. peers[1] .. "'s") or
          (found .. ", and no peer runs etcd as a static Pod to write one from")
        said = verdict == "replace" and how or (said .. "; " .. how)
        fix = "runbooks/etcd-member-replace.lua -e node=" .. name .. ((#copies == 0 and peers[1]) and (" -e manifest_from=" .. peers[1]) or "")
      end
      finding(out, "manifest-missing", "critical", name, string.format("%s/etcd.yaml is gone, and so is its member's data " ..
        "(no WAL in %s/member/wal; %s): %s", facts.MANIFESTS, etcd_nodes.DATA_DIR, cm and "kubeadm-config says etcd.local" or
        "its kube-apiserver's etcd is on the node", said), "ls -l /etc/kubernetes/manifests; ls /var/lib/etcd/member/wal", fix)
    else
      finding(out, "manifest-missing", "critical", name, string.format("%s/etcd.yaml is gone, and etcd-to-systemd never ran " ..
        "here: the kubelet runs no etcd member here (%s)", facts.MANIFESTS, cm and "kubeadm-config says etcd.local" or
        ("kube-system/kubeadm-config unread; " .. etcd_nodes.DATA_DIR .. "/member holds a member's data")),
        "ls -l /etc/kubernetes/manifests; ls -d /var/lib/etcd/member", "runbooks/recover-static-pods.lua")
    end
  end
  doctor_etcd.lost_data(cp, out, etcd_healthy, hidden)
  if not cm then return end  -- the rest is against kubeadm-config; cluster() has said why there is none
  for _, x in ipairs(etcd_nodes.split(where, cc)) do
    finding(out, "etcd-split", "warning", nil, x, "ls /etc/kubernetes/manifests; systemctl status etcd; " .. RUNS,
      "runbooks/etcd-to-systemd.lua (engine resume its run)")
  end
  local want = type(cc) == "table" and cc.kubernetesVersion and ("v" .. tostring(cc.kubernetesVersion):gsub("^v", ""))
  local versions = {}
  for v, names in pairs(by_version) do
    table.sort(names)
    versions[#versions + 1] = v .. " on " .. table.concat(names, ", ")
  end
  table.sort(versions)
  if #versions > 1 or (#versions == 1 and want and not by_version[want]) then
    finding(out, "version-skew", "warning", nil, string.format("kube-apiserver %s%s: a Kubernetes upgrade stopped midway",
      table.concat(versions, "; "), want and (" (kubeadm-config says " .. want .. ")") or ""),
      "kubectl -n kube-system get pods -l component=kube-apiserver -o wide", "runbooks/k8s-upgrade.lua (engine resume its run)")
  end
end

--- monitoring(p, out): firing alerts, and the gauges of an upgrade left in flight (seed 004).
function M.monitoring(p, out)
  if not p.prometheus then
    finding(out, "alerts-not-checked", "info", nil, "no Prometheus: set prometheus=URL or the prometheus_url host var",
      "the Prometheus alerts page")
  else
    local alerts, err, msg = prometheus.alerts { url = p.prometheus }
    if not alerts then
      finding(out, "alerts-unknown", "warning", nil, "Prometheus at " .. p.prometheus .. ": " .. tostring(msg or err),
        "curl " .. p.prometheus .. "/api/v1/alerts")
    else
      local ignore = {}
      for _, a in ipairs(p.ignore_alerts) do ignore[a] = true end
      for _, a in ipairs(alerts) do
        if a.state == "firing" and not ignore[a.name] then
          local where = a.labels.instance or a.labels.node or a.labels.job
          finding(out, "alert-firing", a.labels.severity == "critical" and "critical" or "warning", nil,
            string.format("%s firing%s since %s", a.name, where and (" (" .. where .. ")") or "", tostring(a.active_at)),
            "curl " .. p.prometheus .. "/api/v1/alerts", a.name:match("^K8sUpgrade") and "runbooks/k8s-upgrade.lua (" .. RUNS .. ", engine resume)" or nil)
        end
      end
    end
  end
  if p.pushgateway then
    local r, err, msg = http.request { url = p.pushgateway .. "/api/v1/metrics", timeout = 5 }
    local doc = r and r.status == 200 and http.json_decode(r.body)
    if not doc then
      finding(out, "pushgateway-unknown", "warning", nil, "Pushgateway at " .. p.pushgateway .. ": " ..
        tostring(msg or err or (r and ("HTTP " .. r.status))), "curl " .. p.pushgateway .. "/api/v1/metrics")
      return
    end
    for _, group in ipairs(doc.data or {}) do
      local job = (group.labels or {}).job
      local function gauge(name)
        local g = group[name]
        return g and g.metrics and g.metrics[1] and tonumber(g.metrics[1].value)
      end
      if job == p.pushgateway_job and gauge("k8s_upgrade_in_flight") == 1 then
        local started = gauge("k8s_upgrade_started_timestamp")
        finding(out, "upgrade-in-flight", "warning", nil, string.format("job %s: k8s_upgrade_in_flight is 1%s", job,
          started and started > 0 and (" since " .. os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(started))) or ""),
          RUNS .. "; curl " .. p.pushgateway .. "/api/v1/metrics", "runbooks/k8s-upgrade.lua (engine resume RUN)")
      end
    end
  end
end

return M
