-- The pieces of runbooks/cert-renew.lua: the precheck and its plan, the per-node backup, renewal,
-- health waits and verification, the API through a renewed node, and the admin.conf handover.
local certs = require "std.certs"
local facts = require "std.facts"
local fleet = require "engine.fleet"
local http = require "engine.http"
local k8s = require "engine.k8s"
local kubeadm = require "std.kubeadm"
local nodes = require "etcd_nodes"
local remote = require "std.remote"
local ssh = require "engine.ssh"
local static_pod = require "std.static_pod"
local text = require "std.text"

local M = {}

-- What `kubeadm certs renew` takes (kubeadm v1.29+), in its order.
M.RENEWABLE = { "admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "controller-manager.conf",
  "etcd-healthcheck-client", "etcd-peer", "etcd-server", "front-proxy-client", "scheduler.conf", "super-admin.conf" }
local CAS = { ca = "pki/ca", ["etcd-ca"] = "pki/etcd/ca", ["front-proxy-ca"] = "pki/front-proxy-ca" }
-- The static pods that read the renewed files; etcd rereads its own at every handshake and is
-- restarted only when it does not serve its renewed certificate.
M.COMPONENTS = { "kube-apiserver", "kube-controller-manager", "kube-scheduler" }

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

--- wanted(list) → set of kubeadm names ("all" is every one). Raises on a name kubeadm does not take.
function M.wanted(list)
  local known, out = set_of(M.RENEWABLE), {}
  for _, name in ipairs(list) do
    if name == "all" then return known end
    if not known[name] then
      fail("certs: %q is not a certificate kubeadm renews (one of: all, %s)", name, table.concat(M.RENEWABLE, ", "))
    end
    out[name] = true
  end
  return out
end

-- The node's facts the precheck needs in one read: its clock, the CA keys present, free space.
local function node_facts(h, p)
  local q = remote.quote
  local r = remote.must(h, "date +%s; cd /etc/kubernetes 2>/dev/null && for f in pki/ca.key pki/etcd/ca.key " ..
    "pki/front-proxy-ca.key pki/apiserver.crt; do [ -f \"$f\" ] && echo \"have $f\"; done; " ..
    "mkdir -p " .. q(p.backup_dir) .. " 2>/dev/null; df -Pk /etc/kubernetes " .. q(p.backup_dir) .. " | tail -n +2",
    { read_only = true, what = "reading the node's clock, kubeadm's CA keys and free space" })
  local out = { now = tonumber(r.stdout:match("^%s*(%d+)")), have = {}, free_kb = math.huge }
  for f in r.stdout:gmatch("have (%S+)") do out.have[f] = true end
  for line in r.stdout:gmatch("[^\n]+") do
    local avail = line:match("^%S+%s+%d+%s+%d+%s+(%d+)%s")
    if avail then out.free_kb = math.min(out.free_kb, tonumber(avail)) end
  end
  return out
end

--- precheck(p, hosts, wanted) → plan: per node {renew = {names}, files = {name = {serial, days_left,
--- not_after}}, served = {endpoint name = serial}, kubelet = serial, now, has_etcd}. Every problem
--- is named, all at once; nothing is changed.
function M.precheck(p, hosts, wanted)
  local plan, problems = {}, {}
  local function problem(fmt, ...) problems[#problems + 1] = string.format(fmt, ...) end
  local res = fleet.each(hosts, function(h)
    local f = node_facts(h, p)
    local np = { renew = {}, files = {}, served = {}, now = f.now }
    plan[h.name] = np
    if not f.have["pki/apiserver.crt"] then
      problem("%s: no kubeadm control-plane PKI (/etc/kubernetes/pki/apiserver.crt is missing): not a control-plane node?", h.name)
      return
    end
    for _, base in pairs(CAS) do
      if not f.have[base .. ".key"] then
        problem("%s: %s.key is missing (an external CA): kubeadm cannot renew what it signs", h.name, base)
      end
    end
    if f.free_kb < p.min_free_mb * 1024 then
      problem("%s: %d MiB free under /etc/kubernetes or %s, %d needed", h.name, f.free_kb // 1024, p.backup_dir, p.min_free_mb)
    end
    for _, row in ipairs(certs.files(h, { control_plane = true })) do
      local c = row.cert
      if row.error then
        if wanted[row.name] then problem("%s: %s (%s): %s", h.name, row.name, row.file, row.error) end
      elseif c.is_ca then
        if c.days_left < p.min_ca_days then
          problem("%s: CA %s (%s) %s: kubeadm certs renew cannot renew a CA; renew it by hand (docs/certs.md) before the leaves",
            h.name, row.name, row.file, c.expired and ("expired " .. c.not_after_text) or
              string.format("expires in %d days (%s)", c.days_left, c.not_after_text))
        end
      else
        np.files[row.name] = { serial = c.serial, days_left = c.days_left, not_after = c.not_after_text, file = row.file }
        if row.name == "kubelet-client" or row.name == "kubelet.conf" then np.kubelet = np.kubelet or c.serial end
        if row.name == "etcd-healthcheck-client" then np.has_etcd = true end
        if wanted[row.name] and (not p.under_days or c.days_left < p.under_days) then np.renew[#np.renew + 1] = row.name end
      end
    end
    table.sort(np.renew)
    for _, s in ipairs(certs.served(h)) do np.served[s.name] = s.cert and s.cert.serial or false end
    if #np.renew > 0 then M.restartable(h, np, problem) end
  end, { at_once = 10, max_failures = #hosts })
  -- A node not read (SSH refused) is a problem like the others: it has no plan to show or follow.
  for _, r in ipairs(res) do
    if r.status == "failed" then problem("%s", tostring(r.error)) end
  end
  if #problems > 0 then
    table.sort(problems)
    fail("precheck failed, nothing was changed:\n  %s", table.concat(problems, "\n  "))
  end
  return plan
end

--- restartable(host, node_plan, problem): what the run restarts and waits for on a node with
--- certificates due is there. A control-plane manifest gone (moved out by hand) would fail its
--- restart after kubeadm had renewed; a stacked etcd member not running would fail the health wait
--- after the API server's restart, the node half done. Read from files and units, not from etcd
--- itself, whose certificates may be the ones expired (seed 001).
function M.restartable(h, np, problem)
  for _, c in ipairs(facts.missing_manifests(h)) do
    problem("%s: %s/%s.yaml is gone: this run restarts %s after renewing (runbooks/recover-static-pods.lua writes it again)",
      h.name, facts.MANIFESTS, c, c)
  end
  if not np.has_etcd then return end  -- no etcd PKI here: an external etcd
  local where = nodes.where(h)
  if where == "missing" then
    problem("%s", nodes.missing_sentence({ h.name }))
  elseif where == "none" then
    problem("%s: its etcd member runs neither as a static Pod nor as an active etcd.service: this run waits for it after " ..
      "restarting the API server; bring it back first (systemctl status etcd; runbooks/doctor.lua)", h.name)
  end
end

function M.plan_text(plan, hosts)
  local lines = { { "NODE", "RENEW", "SOONEST", "CERTIFICATES" } }
  for _, h in ipairs(hosts) do
    local np = plan[h.name]
    local soonest
    for _, name in ipairs(np.renew) do
      local f = np.files[name]
      if f and (not soonest or f.days_left < soonest.days_left) then soonest = f end
    end
    lines[#lines + 1] = { h.name, #np.renew,
      soonest and string.format("%d days (%s)", soonest.days_left, soonest.not_after:sub(1, 10)) or "-",
      #np.renew > 0 and table.concat(np.renew, " ") or "nothing due" }
  end
  return text.columns(lines)
end

--- backup(host, p) → the dated directory on the node holding a copy of pki/ and the kubeconfigs
--- (root's, 0700), outside manifests/ (the kubelet runs every file there as a pod; seed 000).
function M.backup(h, p)
  local dir = p.backup_dir .. "/certs-" .. os.date("!%Y%m%dT%H%M%SZ")
  if p.backup_dir:match("^/etc/kubernetes/manifests") then
    fail("backup_dir %s is under /etc/kubernetes/manifests: the kubelet would run what is copied there", p.backup_dir)
  end
  local q = remote.quote
  remote.must(h, "umask 077 && mkdir -p " .. q(dir) .. " && cp -a /etc/kubernetes/pki " .. q(dir) .. "/ && " ..
    "for f in /etc/kubernetes/*.conf; do [ -f \"$f\" ] && cp -a \"$f\" " .. q(dir) .. "/; done; true",
    { what = "backing up /etc/kubernetes/pki and the kubeconfigs to " .. dir })
  return dir
end

--- renew(host, node_plan) → the node's clock just before `kubeadm certs renew`.
function M.renew(h, np)
  local names = set_of(np.renew)
  local all = true
  for _, n in ipairs(M.RENEWABLE) do
    if not names[n] and np.files[n] then all = false end
  end
  local q = remote.quote
  local cmd = {}
  if all then
    cmd[1] = "kubeadm certs renew all"
  else
    for _, n in ipairs(np.renew) do cmd[#cmd + 1] = "kubeadm certs renew " .. q(n) end
  end
  -- The node's clock to the nanosecond before kubeadm runs: a restart can follow within the same second
  -- (the restart probe compares container creation times against it).
  local r = remote.must(h, "date +%s.%N && " .. table.concat(cmd, " && "), { what = table.concat(cmd, "; "), timeout = 300 })
  if not http.dry_run() then log.info("renewed", { node = h.name, certificates = table.concat(np.renew, " ") }) end
  return tonumber((r.stdout or ""):match("^%s*(%d+%.?%d*)")) or np.now
end

--- already_renewed(host, node_plan) → true, the precheck's clock when every certificate due has a
--- new serial (a run killed after kubeadm renewed them: not renewed twice).
function M.already_renewed(h, np)
  local now = {}
  for _, row in ipairs(certs.files(h, { control_plane = true })) do
    if row.cert then now[row.name] = row.cert.serial end
  end
  for _, name in ipairs(np.renew) do
    if not np.files[name] or now[name] == np.files[name].serial then return false end
  end
  return true, np.now
end

--- restart_order(host, node_plan) → the control-plane components to restart.
function M.restart_order(_, _)
  return M.COMPONENTS
end

--- restarted_since(host, component, t) → true, created when the component's container was created
--- after t (the node's clock): a run killed after the restart does not restart it again.
function M.restarted_since(h, comp, t)
  local c = static_pod.container(h, comp)
  if c and t and c.created_at > t then return true, c.created end
  return false
end

local function node_address(h)
  local addr = h.vars.ansible_host or h.name
  if tostring(addr):find(":", 1, true) then addr = "[" .. addr .. "]" end
  return addr, tonumber(h.vars.k8s_apiserver_port) or 6443
end

local ca_of = {}
local function node_ca(h)
  if not ca_of[h.name] then
    ca_of[h.name] = remote.must(h, "cat /etc/kubernetes/pki/ca.crt", { read_only = true, what = "reading pki/ca.crt" }).stdout
  end
  return ca_of[h.name]
end

--- wait_healthy(host, p, component, has_etcd): after a restart, the node's API server answers /readyz (its
--- own address, its certificate checked against the cluster CA) and the node's etcd member is
--- healthy and caught up (stacked etcd: a member on the node), twice in a row. Raises naming what did not come back.
function M.wait_healthy(h, p, comp, has_etcd)
  if http.dry_run() then return end
  local addr, port = node_address(h)
  local ok, why = nodes.gate(function()
    local r, err, msg = http.request { url = "https://" .. addr .. ":" .. port .. "/readyz", ca_data = node_ca(h), timeout = 5 }
    if not r then return nil, "/readyz: " .. tostring(msg or err) end
    if r.status ~= 200 then return nil, "/readyz answered " .. r.status .. ": " .. r.body:sub(1, 200) end
    if has_etcd then
      local st, e = nodes.member_ok(h, p)
      if not st then return nil, "etcd member " .. e end
    end
    return true
  end, 2, 1, p.ready_timeout)
  if not ok then error(string.format("after restarting %s: %s", comp, why), 0) end
end

--- api_through(host) → tunnel: the k8s client now reaches the API through the node's SSH with its
--- renewed admin.conf (kept in memory, its key never logged), its certificate checked against the
--- name every kubeadm API server certificate carries.
function M.api_through(h)
  local conf = remote.must(h, "cat /etc/kubernetes/admin.conf", { read_only = true, what = "reading the renewed admin.conf" }).stdout
  local key = conf:match("client%-key%-data:%s*(%S+)")
  if key then log.secret(key) end
  local addr, port = node_address(h)
  local t, err, msg = ssh.tunnel(h, (addr:gsub("^%[(.*)%]$", "%1")), port)
  if not t then error(string.format("%s: a tunnel to the API server: %s", h.name, tostring(msg or err)), 0) end
  k8s.configure { kubeconfig_data = conf, server = "https://127.0.0.1:" .. t.port, tls_server_name = "kubernetes" }
  local ok, rerr, rmsg = k8s.ready()
  if not ok then error(string.format("%s: the API through the node with its renewed admin.conf: %s", h.name, tostring(rmsg or rerr)), 0) end
  log.info("the API through the node, with its renewed admin.conf", { node = h.name })
  return t
end

--- verify(host, p, node_plan) → {served = {{endpoint, name, serial, not_after}}, not_after = {kubeadm
--- name = the file's NotAfter}}: each endpoint serves the
--- renewed file (the API server, etcd's client and peer ports; an etcd static pod still serving the
--- old one is restarted once), the scheduler and controller-manager a certificate they made after
--- the precheck (they restarted). Raises naming every endpoint that does not.
function M.verify(h, p, np)
  if http.dry_run() then return {} end
  local names  -- kubeadm name → the file's NotAfter now
  local function check()
    local file = {}
    names = {}
    for _, row in ipairs(certs.files(h, { control_plane = true })) do
      if row.cert then file[row.file], names[row.name] = row.cert, row.cert.not_after_text end
    end
    local rows, bad, etcd_stale = {}, {}, false
    for _, s in ipairs(certs.served(h)) do
      if not s.cert then
        bad[#bad + 1] = string.format("%s at %s: %s", s.name, s.endpoint, s.error)
      elseif s.file then
        local f = file[s.file]
        if not f or f.serial ~= s.cert.serial or f.not_after ~= s.cert.not_after then
          bad[#bad + 1] = string.format("%s at %s serves serial %s (NotAfter %s), %s holds %s", s.name, s.endpoint,
            s.cert.serial, s.cert.not_after_text, s.file, f and (f.serial .. " (NotAfter " .. f.not_after_text .. ")") or "nothing")
          if s.name:match("^etcd%-") then etcd_stale = true end
        end
      elseif np.served[s.name] and np.served[s.name] == s.cert.serial then
        bad[#bad + 1] = string.format("%s at %s still serves the certificate it served before the renewal (serial %s): " ..
          "it did not restart", s.name, s.endpoint, s.cert.serial)
      end
      if s.cert then
        rows[#rows + 1] = { name = s.name, endpoint = s.endpoint, serial = s.cert.serial, not_after = s.cert.not_after_text }
      end
    end
    return rows, bad, etcd_stale
  end
  local rows, bad, etcd_stale = check()
  if etcd_stale and #bad > 0 then
    local r = static_pod.restart(h, "etcd", { parking = p.backup_dir .. "/parked", timeout = p.restart_timeout })
    if r then
      M.wait_healthy(h, p, "etcd", np.has_etcd)
      rows, bad = check()
    end
  end
  if #bad > 0 then
    error(string.format("after the renewal and restarts, what %s serves does not match:\n  %s", h.name,
      table.concat(bad, "\n  ")), 0)
  end
  for _, r in ipairs(rows) do log.info("serves the renewed certificate", { node = h.name, endpoint = r.endpoint, name = r.name,
    serial = r.serial, not_after = r.not_after }) end
  return { served = rows, not_after = names }
end

--- kubelet(host, node_plan): its client certificate changed during the run (renewed or rotated):
--- the kubelet restarted, the node Ready again.
function M.kubelet(h, np)
  if http.dry_run() or not np.kubelet then return end
  step("kubelet", function()
    local now
    for _, row in ipairs(certs.files(h, {})) do
      if row.cert and (row.name == "kubelet-client" or row.name == "kubelet.conf") then now = now or row.cert.serial end
    end
    if now == np.kubelet then return "unchanged" end
    log.info("the kubelet's client certificate changed during the run: restarting the kubelet", { node = h.name,
      was = np.kubelet, now = now })
    kubeadm.restart_kubelet_ready(h, { timeout = 300 })
    log.info("kubelet restarted, the node Ready", { node = h.name })
    return "restarted"
  end)
end

--- hand_over(host, path): the node's renewed admin.conf written here at path (0600), and checked:
--- it reaches the API. Its content is never logged.
function M.hand_over(h, path)
  local q = remote.quote
  -- A private copy the login user can download (sudo's SUDO_UID), removed right after.
  local r = remote.must(h, "d=$(mktemp -d -p /var/tmp) && install -m 0600 -o \"${SUDO_UID:-0}\" /etc/kubernetes/admin.conf " ..
    "\"$d/admin.conf\" && chown \"${SUDO_UID:-0}\" \"$d\" && echo \"$d\"", { what = "copying admin.conf for the download" })
  if http.dry_run() then log.info("dry-run: would write the renewed admin.conf", { to = path }) return end
  local dir = r.stdout:match("(/%S+)")
  local d, err, msg = h:download(dir .. "/admin.conf", path, { mode = "0600" })
  remote.must(h, "rm -rf " .. q(dir), { what = "removing the copy of admin.conf" })
  if not d then error(string.format("writing %s: %s", path, tostring(msg or err)), 0) end
  k8s.configure { kubeconfig = path }
  local list, lerr, lmsg = k8s.nodes()
  if not list then
    error(string.format("%s was written (0600) but does not reach the cluster: %s", path, tostring(lmsg or lerr)), 0)
  end
  print(string.format("\nThe renewed admin.conf is at %s (mode 0600): it reaches the cluster (%d nodes).", path, #list))
  return path
end

function M.summary_text(plan, done, verified)
  local lines = { { "NODE", "RENEWED", "WAS (NOT AFTER)", "NOW (NOT AFTER)" } }
  for _, h in ipairs(done) do
    local now = (verified[h.name] or {}).not_after or {}
    for _, name in ipairs(plan[h.name].renew) do
      local f = plan[h.name].files[name]
      lines[#lines + 1] = { h.name, name, f and f.not_after, now[name] }
    end
  end
  return "\n" .. text.columns(lines)
end

return M
