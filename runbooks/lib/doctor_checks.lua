-- The checks of runbooks/doctor.lua, each read only: what the seeds got wrong, looked for on every
-- node and in the cluster. A finding is {name, severity, node, evidence, see, runbook}: what was
-- found, on which node (nil: the cluster), the facts, the command an SRE would run to see it, and
-- the runbook that answers it.
local certs = require "std.certs"
local etcd = require "engine.etcd"
local etcd_nodes = require "etcd_nodes"
local facts = require "std.facts"
local http = require "engine.http"
local k8s = require "engine.k8s"
local kubeadm = require "std.kubeadm"
local policy = require "std.rbac_policy"
local prometheus = require "engine.prometheus"
local remote = require "std.remote"
local semver = require "std.semver"
local svc = require "std.etcd_service"
local systemd = require "std.systemd"

local M = {}
-- Where a stopped run is listed: on the machine that ran it, or in the cluster for a Job's
-- (deploy/upgrade-job.yaml keeps its runs under k8s://engine).
local RUNS = "engine runs (a Job's run: engine runs --state-dir k8s://engine)"

M.SEVERITIES = { "critical", "warning", "info" }

local function finding(out, name, severity, node, evidence, see, runbook)
  out[#out + 1] = { name = name, severity = severity, node = node, evidence = evidence, see = see, runbook = runbook }
end

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

local function section(text, name)
  return text:match("## " .. name .. "\n(.-)\n## ") or text:match("## " .. name .. "\n(.*)$") or ""
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

--- etcd_unit(host, out): a control-plane node where etcd runs neither as a static Pod nor as an
--- active etcd.service, though the unit is installed (etcd-to-systemd.lua moved it there): the
--- member is down on this node, and the cluster check alone would say only that it does not answer.
--- Its state and the journal's last lines are the finding's evidence. members: how many
--- control-plane nodes there are (the only member's lost data is restored, not replaced).
function M.etcd_unit(h, out, members)
  local q = remote.quote
  local r = remote.must(h, "systemctl is-enabled " .. q(svc.UNIT) .. " 2>/dev/null || true; echo '## active'; systemctl is-active " ..
    q(svc.UNIT) .. " || true; echo '## journal'; journalctl -u " .. q(svc.UNIT) .. " --no-pager -n 3 2>/dev/null | tail -n 3; " ..
    -- A member whose data is lost says so once per start, above its stack trace.
    "echo '## lost'; journalctl -u " .. q(svc.UNIT) .. " --no-pager -n 300 2>/dev/null | grep -m1 -o " ..
    "-e 'tocommit([0-9]*) is out of range.*lost?' -e 'member [0-9a-f]* has already been bootstrapped' || true",
    { read_only = true, what = "systemctl is-enabled etcd and its journal" })
  local enabled = r.stdout:match("^(%S+)")
  if enabled ~= "enabled" and enabled ~= "disabled" then return end  -- no etcd.service here: external etcd, or none
  local state = section(r.stdout, "active"):match("%S+") or "unknown"
  local lines, last = {}, nil
  for line in section(r.stdout, "journal"):gmatch("[^\n]+") do  -- a restart loop repeats one line
    if line ~= last then lines[#lines + 1] = line end
    last = line
  end
  local journal = table.concat(lines, "\n")
  finding(out, "etcd-down", "critical", h.name, string.format("etcd.service is %s (%s), and no etcd static Pod runs here%s",
    state, enabled, journal ~= "" and ("; its journal ends: " .. journal:gsub("\n", " | ")) or ""),
    "systemctl status etcd; journalctl -u etcd -n 50", nil)
  local lost = section(r.stdout, "lost"):match("[^\n]+")
  lost = lost and ("its journal says its data is lost: " .. lost)
  if not lost then
    -- The only member says nothing of the kind: as an existing member with no data it asks its
    -- peers for the cluster, and there are none ("cannot fetch cluster info from peer urls").
    local dir = svc.flags_of_env(systemd.read(h, svc.ENV_FILE) or "")["data-dir"] or etcd_nodes.DATA_DIR
    if not etcd_nodes.has_data(h, dir) then lost = "its data is lost: " .. dir .. "/member holds no member's data (no WAL)" end
  end
  if lost then  -- the same finding's row: what the journal or its data directory says, and the runbook
    local only = members == 1
    finding(out, "etcd-down", "critical", h.name, lost ..
      (only and " (the only member: nothing can replace it; restore it from a snapshot)" or ""),
      "systemctl status etcd; journalctl -u etcd -n 50",
      only and "runbooks/etcd-restore.lua -e snapshot=FILE" or ("runbooks/etcd-member-replace.lua -e node=" .. h.name))
  end
end

-- after_loss(cp, name, etcd_healthy, hidden) → what brings back name's member, whose data is lost,
-- and the sentence that says why: "replace" (the others hold a quorum: member remove, member add),
-- "restore" (fewer than a quorum of the others kept their data: every member from a snapshot),
-- "wait" (enough of them kept their data, but too few are healthy: they come back first, a
-- restore would lose what they hold), "unknown" (--limit hides members). etcd_healthy:
-- etcd_cluster's count (the member that lost its data is not among them), nil when no member
-- answered; "kept their data": the other nodes whose etcd runs and holds a WAL.
local function after_loss(cp, name, etcd_healthy, hidden)
  if #(hidden or {}) > 0 then
    return "unknown", string.format("--limit hides %s, so whether the other members hold a quorum (the member " ..
      "replaced) or not (every member restored from a snapshot) is not known here: run doctor without --limit",
      table.concat(hidden, ", "))
  end
  local total, kept = 0, {}
  for other, o in pairs(cp) do
    total = total + 1
    if other ~= name and etcd_nodes.runs(o.etcd) and not o.etcd_lost and o.etcd_data ~= false then kept[#kept + 1] = other end
  end
  table.sort(kept)
  local quorum, others = total // 2 + 1, total - 1
  if total == 1 then return "restore", "it is the only member, so nothing can replace it" end
  if (etcd_healthy or #kept) >= quorum then
    return "replace", etcd_healthy and string.format("%d of the other %d members are healthy, a quorum", etcd_healthy, others)
      or string.format("%d of the other %d members run with their data (%s), a quorum", #kept, others, table.concat(kept, ", "))
  end
  if #kept < quorum then
    return "restore", string.format("%s of the other %d members %s with %s data%s, fewer than a quorum of %d, so nothing " ..
      "can replace it", #kept == 0 and "none" or tostring(#kept), others, #kept == 1 and "runs" or "run",
      #kept == 1 and "its" or "their", #kept > 0 and (" (" .. table.concat(kept, ", ") .. ")") or "", quorum)
  end
  return "wait", string.format("%d of the other %d members run with their data (%s) but only %d %s healthy, fewer than a " ..
    "quorum of %d: bring them back first (etcdctl endpoint health --cluster, their logs; a restore would lose what they " ..
    "hold), then replace it", #kept, others, table.concat(kept, ", "), etcd_healthy, etcd_healthy == 1 and "is" or "are", quorum)
end

-- lost_data(cp, out, etcd_healthy, hidden): a static Pod's member whose data is gone while its
-- manifest stays. The kubelet starts it again and again, and each start exits at once ("member ...
-- has already been bootstrapped": it asks its peers to start a cluster they already have).
local function lost_data(cp, out, etcd_healthy, hidden)
  local names = {}
  for name, c in pairs(cp) do if c.etcd_lost then names[#names + 1] = name end end
  table.sort(names)
  for _, name in ipairs(names) do
    local verdict, said = after_loss(cp, name, etcd_healthy, hidden)
    local fix = (verdict == "replace" or verdict == "wait") and ("runbooks/etcd-member-replace.lua -e node=" .. name)
      or verdict == "restore" and "runbooks/etcd-restore.lua -e snapshot=FILE" or nil
    if verdict == "replace" then said = said .. ": replace it (member remove, member add, its etcd started empty to join them)"
    elseif verdict == "restore" then said = said .. ": restore every member from a snapshot" end
    finding(out, "etcd-data-lost", "critical", name, string.format("%s/etcd.yaml starts a member whose data is gone (no WAL " ..
      "in %s/member/wal): it exits at each start (\"has already been bootstrapped\"); %s", facts.MANIFESTS, cp[name].etcd_lost, said),
      "ls " .. cp[name].etcd_lost .. "/member/wal; crictl ps -a --name etcd; crictl logs $(crictl ps -a --name etcd -q | head -1)", fix)
  end
end

--- control_plane(cp, out, api): the control-plane nodes (host → {etcd = etcd_nodes.where, apiserver =
--- its version, etcd_data = a member's data there, etcd_copies = its manifest's moved copies when
--- not, etcd_lost = the data directory of a static Pod's member that holds no data) against
--- kubeadm-config. A migration of etcd to systemd stopped midway works today and breaks kubeadm's
--- next upgrade; API servers at different versions, or not at kubeadm-config's kubernetesVersion,
--- are an upgrade stopped midway (with no Pushgateway to say so). api: the API answered; without it
--- (or kubeadm-config) only the gone etcd.yaml is told, from the member's data left on the node, and
--- a member's lost data from its data directory. etcd_healthy: etcd_cluster's count of healthy
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
      local verdict, said = after_loss(cp, name, etcd_healthy, hidden)
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
  lost_data(cp, out, etcd_healthy, hidden)
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

-- forks(nodes, out) → nodes, without those whose etcd answers as a cluster of its own. Each node's
-- member is asked which cluster it is in (its status's cluster ID, and that cluster's member
-- list). A member that lost its data under a manifest whose --initial-cluster names itself alone
-- (kubeadm writes every member's so at init and at every upgrade; kubespray#13261) starts a new,
-- empty cluster, healthy, with a leader: examined through that node, etcd would look whole and
-- empty, and the answer would be a forced restore over the others' good data. The cluster with
-- the most members is the cluster; each node of another is an etcd-forked finding.
local function forks(nodes, out)
  if #nodes < 2 then return nodes end
  local by, order = {}, {}
  for _, h in ipairs(nodes) do
    local tun = etcd.via_node(h, { address = h.vars.etcd_access_address })
    if tun then
      local ep = etcd.endpoints()[1]
      local st = etcd.status(ep)
      local ms = st and st.cluster_id and etcd.members(ep)
      if ms then
        if not by[st.cluster_id] then
          by[st.cluster_id] = { id = st.cluster_id, members = ms, nodes = {} }
          order[#order + 1] = by[st.cluster_id]
        end
        table.insert(by[st.cluster_id].nodes, h.name)
      end
      tun:close()
    end
  end
  if #order < 2 then return nodes end
  table.sort(order, function(a, b)
    if #a.members ~= #b.members then return #a.members > #b.members end
    return a.id < b.id
  end)
  local main, gone = order[1], {}
  local function names(ms)
    local l = {}
    for _, m in ipairs(ms) do l[#l + 1] = m.name ~= "" and m.name or m.id end
    return table.concat(l, ", ")
  end
  for i = 2, #order do
    for _, name in ipairs(order[i].nodes) do
      gone[name] = true
      finding(out, "etcd-forked", "critical", name, string.format("its etcd answers as a cluster of its own (cluster %s: %s), " ..
        "not the one %s answer%s for (cluster %s: %d members, %s): its data was lost and its manifest (--initial-cluster " ..
        "naming itself alone, as kubeadm writes it at init and at every upgrade) started a new, empty cluster. The node's " ..
        "API server reads and writes that one", order[i].id, names(order[i].members), table.concat(main.nodes, ", "),
        #main.nodes == 1 and "s" or "", main.id, #main.members, names(main.members)),
        "etcdctl endpoint status -w table on " .. name .. " and on " .. main.nodes[1] .. " (two cluster IDs); etcdctl member list",
        "runbooks/etcd-member-replace.lua -e node=" .. name)
    end
  end
  local kept = {}
  for _, h in ipairs(nodes) do if not gone[h.name] then kept[#kept + 1] = h end end
  return kept
end

--- etcd_cluster(p, nodes, out, quotas) → healthy members (nil when etcd cannot be reached), the node
--- etcd was examined through: health, leader, alarms (NOSPACE), each member's database against its
--- quota (p.etcd_quota_bytes, else quotas[member name], its own flag, else etcd's 2 GiB) and its
--- fragmentation, through the SSH of the first of nodes (the leader first) whose tunnel reaches a
--- member: a leader node that is down, or whose member is, does not hide the others' quorum.
function M.etcd_cluster(p, nodes, out, quotas)
  local t, health, via
  local unreachable, unanswered = {}, {}
  nodes = forks(nodes, out)
  for _, h in ipairs(nodes) do
    local tun, err, msg = etcd.via_node(h, { address = h.vars.etcd_access_address })
    if not tun then
      unreachable[#unreachable + 1] = (#nodes > 1 and h.name .. ": " or "") .. tostring(msg or err)
    else
      local herr, hmsg
      health, herr, hmsg = etcd.cluster_health()
      if health then
        t, via = tun, h
        break
      end
      tun:close()
      unanswered[#unanswered + 1] = { h.name, tostring(hmsg or herr) }
    end
  end
  if #unanswered == 0 and not health then
    finding(out, "etcd", "critical", #nodes == 1 and nodes[1].name or nil, "cannot reach etcd through "
      .. (#nodes == 1 and "the node: " or "any control-plane node: ") .. table.concat(unreachable, "; "),
      "etcdctl endpoint health --cluster")
    return
  end
  local healthy = 0
  if not health then
    local through = {}
    for _, u in ipairs(unanswered) do through[#through + 1] = string.format("%s's SSH tunnel: %s", u[1], u[2]) end
    finding(out, "etcd-unhealthy", "critical", nil, "no member answers through " .. table.concat(through, "; nor through ")
      .. (#unreachable > 0 and "; and no SSH tunnel opens to " .. table.concat(unreachable, "; ") or ""),
      "etcdctl endpoint health --cluster")
    return 0
  else
    if via ~= nodes[1] then log.info("etcd examined through " .. via.name, { unreachable = table.concat(unreachable, "; ") }) end
    -- Fewer than a quorum healthy: no member can be replaced (member remove and add need one). The
    -- stopped ones started again, or, their data lost, every member restored from a snapshot.
    healthy = 0
    for _, m in ipairs(health.members) do if m.healthy then healthy = healthy + 1 end end
    local quorum = #health.members // 2 + 1
    if #health.members > 0 and healthy < quorum then
      finding(out, "etcd-quorum-lost", "critical", nil, string.format("%d of %d members healthy, a quorum is %d: etcd serves " ..
        "nothing, the API servers neither", healthy, #health.members, quorum), "etcdctl endpoint status --cluster -w table; the members' logs",
        "start the stopped members; if their data is lost (\"has already been bootstrapped\", \"raft log corrupted, truncated, " ..
        "or lost\"), restore every member from a snapshot: runbooks/etcd-restore.lua -e snapshot=PATH")
    end
    for _, problem in ipairs(health.problems) do
      problem = problem:gsub("%s*\n%s*", " "):gsub(" %)", ")")
      local alarm = problem:match("^alarm (%S+)")
      if alarm == "NOSPACE" then problem = problem .. ": its database reached its quota; etcd refuses every write, the API server's too" end
      local member = not alarm and problem:match("^(%S+) unhealthy")
      finding(out, alarm and "etcd-alarm" or "etcd-unhealthy", "critical", nil, problem,
        alarm and "etcdctl alarm list" or "etcdctl endpoint health --cluster; the member's log",
        alarm == "NOSPACE" and "runbooks/etcd-maintenance.lua -e mode=defrag -e compact=true (compact, defragment, then disarm)"
          or member and healthy >= quorum and string.format("its log saying \"has already been bootstrapped\" or \"raft log " ..
            "corrupted, truncated, or lost\" (its data is lost): runbooks/etcd-member-replace.lua -e node=%s", member) or nil)
    end
    -- A cluster that answers but holds no kubeadm-config, which kubeadm alone writes: etcd's data
    -- is not the cluster's. A one-member etcd that lost its data starts a new, empty cluster
    -- (kubeadm's --initial-cluster-state=new with itself alone), and the API servers fill it again
    -- with what they make themselves (namespaces, RBAC) and the kubelets with their Nodes: the API
    -- looks alive while every object anyone created is gone.
    if #health.members > 0 and healthy >= quorum then
      local prefix = p.etcd_prefix:gsub("/+$", "")  -- as the API server joins it: "/registry/" is "/registry"
      local key = prefix .. "/configmaps/kube-system/kubeadm-config"
      local _, gerr = etcd.get(key)
      if gerr == "not found" then
        finding(out, "etcd-empty", "critical", nil, string.format("etcd answers but holds no %s: the cluster's objects are " ..
          "not in it (a member that lost its data and started a new, empty cluster; or the API servers use another " ..
          "--etcd-prefix than %s: -e etcd_prefix=)", key, prefix),
          "etcdctl get --prefix --keys-only " .. prefix .. "/configmaps/kube-system/",
          "restore from a snapshot taken before the loss: runbooks/etcd-restore.lua -e snapshot=FILE -e force=true")
      end
    end
    for _, m in ipairs(health.members) do
      local st = m.healthy and m.endpoint and etcd.status(m.endpoint)
      if st and st.db_size > 0 then
        local quota = p.etcd_quota_bytes or (quotas or {})[m.name] or (2 << 30)
        if st.db_size >= quota * p.etcd_quota_warn / 100 then
          finding(out, "etcd-db-size", "warning", m.name, string.format("database %d MiB, %d%% of the %d MiB quota",
            st.db_size >> 20, st.db_size * 100 // quota, quota >> 20), "etcdctl endpoint status -w table",
            "runbooks/etcd-maintenance.lua")
        end
        local free = (st.db_size - st.db_size_in_use) * 100 // st.db_size
        if st.db_size >= p.etcd_defrag_min_mb * 1024 * 1024 and free >= p.etcd_defrag_free then
          finding(out, "etcd-fragmented", "warning", m.name, string.format("database %d MiB, %d%% of it free space",
            st.db_size >> 20, free), "etcdctl endpoint status -w table", "runbooks/etcd-maintenance.lua")
        end
      end
    end
  end
  t:close()
  return healthy, via.name
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
