-- The phases of etcd-bootstrap.lua (seed 003, flow B): the precheck, etcd's PKI made on the
-- leader and handed out (its temporary files removed: IR-8), etcd's configuration for a new
-- cluster, kubeadm's config with the external etcd, and the joins.
local http = require "engine.http"
local k8s = require "engine.k8s"
local remote = require "std.remote"
local systemd = require "std.systemd"
local nodes = require "etcd_nodes"

local M = {}

local q = remote.quote
local PKI = "/etc/kubernetes/pki"
M.ETCD_FILES = { "etcd/ca.crt", "etcd/server.crt", "etcd/server.key", "etcd/peer.crt", "etcd/peer.key",
  "etcd/healthcheck-client.crt", "etcd/healthcheck-client.key", "apiserver-etcd-client.crt", "apiserver-etcd-client.key" }
-- What kubeadm join --control-plane needs to find in place (kubeadm's "certificates that must be
-- shared among control plane instances"); the CA keys stay readable by root only.
M.SHARED = { "ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key" }

function M.address(h) return h.vars.etcd_access_address or h.vars.ansible_host or h.name end

--- precheck(p, cps, workers) → facts: nothing changes; a node that is part of something else is refused.
function M.precheck(p, cps, workers, leader)
  local problem, finish = nodes.errors()
  local facts = { nodes = {} }
  for _, h in ipairs(cps) do
    local r = remote.must(h, "for f in /etc/kubernetes/admin.conf /etc/kubernetes/manifests/etcd.yaml /var/lib/etcd/member; do " ..
      "[ -e \"$f\" ] && echo \"has $f\"; done; systemctl is-active etcd.service || true; kubeadm version -o short 2>/dev/null || echo nokubeadm",
      { read_only = true, what = "looking at the node" })
    local active = r.stdout:find("\nactive\n", 1, true) or r.stdout:match("^active\n")
    if r.stdout:find("has /etc/kubernetes/manifests/etcd.yaml", 1, true) then
      problem("%s runs kubeadm's stacked etcd already: this is a cluster; see etcd-to-systemd.lua", h.name)
    end
    if r.stdout:find("has /var/lib/etcd/member", 1, true) and not active then
      problem("%s: /var/lib/etcd holds an etcd member's data and no etcd.service runs it: another cluster's? " ..
        "Refusing to start a new member on it (move it away first)", h.name)
    end
    local kv = r.stdout:match("(v%d+%.%d+%.%d+)")
    if not kv then problem("%s: kubeadm is not installed", h.name) end
    facts.nodes[h.name] = { kubeadm = kv, initialized = r.stdout:find("has /etc/kubernetes/admin.conf", 1, true) ~= nil }
  end
  for _, h in ipairs(workers) do
    local r = remote.must(h, "kubeadm version -o short 2>/dev/null || echo nokubeadm", { read_only = true, what = "kubeadm version" })
    if not r.stdout:match("v%d") then problem("%s: kubeadm is not installed", h.name) end
  end
  facts.kubernetes = p.kubernetes_version and ("v" .. p.kubernetes_version:gsub("^v", "")) or
    (facts.nodes[leader.name] or {}).kubeadm
  for name, n in pairs(facts.nodes) do
    if n.kubeadm and facts.kubernetes and n.kubeadm ~= facts.kubernetes then
      problem("%s: kubeadm is %s, not %s", name, n.kubeadm, facts.kubernetes)
    end
  end
  nodes.release(p, p.version, facts, problem)
  finish()
  return facts
end

local function ext(name, kind, sans)
  local lines = { "keyUsage=critical,digitalSignature,keyEncipherment" }
  lines[#lines + 1] = kind == "client" and "extendedKeyUsage=clientAuth" or "extendedKeyUsage=serverAuth,clientAuth"
  if sans then lines[#lines + 1] = "subjectAltName=" .. sans end
  return "printf '%s\\n' " .. q(table.concat(lines, "\n")) .. " > \"$tmp/" .. name .. ".ext\""
end

-- One leaf: key, CSR and certificate signed by etcd's CA, in $tmp/DIR/.
local function leaf(dir, name, subj, kind, sans, days)
  local base = "\"$tmp/" .. dir .. "/" .. name .. "\""
  return table.concat({
    "mkdir -p \"$tmp/" .. dir .. "\"",
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. base .. ".key 2>/dev/null",
    "openssl req -new -key " .. base .. ".key -subj " .. q(subj) .. " -out \"$tmp/" .. name .. ".csr\"",
    ext(name, kind, sans),
    "openssl x509 -req -in \"$tmp/" .. name .. ".csr\" -CA " .. PKI .. "/etcd/ca.crt -CAkey " .. PKI .. "/etcd/ca.key " ..
      "-CAcreateserial -CAserial \"$tmp/ca.srl\" -days " .. days .. " -extfile \"$tmp/" .. name .. ".ext\" -out " .. base .. ".crt 2>/dev/null",
  }, "\n")
end

--- pki(p, cps, leader) → {node = {file = content}}: etcd's CA (made once, its key staying on the
--- leader) and every member's server, peer and healthcheck-client certificates and the API
--- servers' apiserver-etcd-client, made with openssl on the leader in a temporary directory that
--- is removed whatever happens (IR-8); read back into memory (keys marked secret).
function M.pki(p, cps, leader)
  local parts = { "set -eu", "mkdir -p -m 0755 " .. PKI .. "/etcd", "umask 077",
    "tmp=$(mktemp -d --suffix=.engine-etcd-pki)", "trap 'rm -rf \"$tmp\"' EXIT",
    "if [ ! -f " .. PKI .. "/etcd/ca.key ]; then openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " ..
      PKI .. "/etcd/ca.key 2>/dev/null && openssl req -x509 -new -key " .. PKI .. "/etcd/ca.key -subj /CN=etcd-ca -days " ..
      p.ca_days .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out " ..
      PKI .. "/etcd/ca.crt; fi" }
  for _, h in ipairs(cps) do
    local sans = "DNS:" .. nodes.member_name(h) .. ",DNS:localhost,IP:" .. M.address(h) .. ",IP:127.0.0.1"
    parts[#parts + 1] = leaf(h.name, "server", "/CN=" .. nodes.member_name(h), "peer", sans, p.cert_days)
    parts[#parts + 1] = leaf(h.name, "peer", "/CN=" .. nodes.member_name(h), "peer", sans, p.cert_days)
    parts[#parts + 1] = leaf(h.name, "healthcheck-client", "/CN=kube-etcd-healthcheck-client", "client", nil, p.cert_days)
    parts[#parts + 1] = leaf(h.name, "apiserver-etcd-client", "/CN=kube-apiserver-etcd-client", "client", nil, p.cert_days)
  end
  parts[#parts + 1] = "cd \"$tmp\" && for f in */*.crt */*.key; do printf '\\n==> %s <==\\n' \"$f\"; cat \"$f\"; done"
  parts[#parts + 1] = "printf '\\n==> ca.crt <==\\n'; cat " .. PKI .. "/etcd/ca.crt"
  local r = remote.must(leader, "sh -c " .. q(table.concat(parts, "\n")), { what = "making etcd's certificates on " .. leader.name })
  log.secret(r.stdout)
  local out, text, pos = {}, "\n" .. r.stdout, 1
  while true do
    local s, e, file = text:find("\n==> (.-) <==\n", pos)
    if not s then break end
    local nxt = text:find("\n==> .- <==\n", e + 1) or (#text + 1)
    out[file] = text:sub(e + 1, nxt - 1)
    pos = nxt
  end
  for k, v in pairs(out) do if k:match("%.key$") then log.secret(v) end end
  return out
end

--- pki_in_place(cps) → operation "etcd certificates": the node holds etcd's CA, its own server and
--- peer certificates (for its own address) and the client certificates, verified against the CA.
function M.pki_in_place(host_files)
  return {
    name = "etcd certificates",
    holds = function(h)
      local checks = {}
      for _, f in ipairs(M.ETCD_FILES) do checks[#checks + 1] = "[ -s " .. q(PKI .. "/" .. f) .. " ] || echo " .. q("missing " .. f) end
      checks[#checks + 1] = "openssl verify -CAfile " .. PKI .. "/etcd/ca.crt " .. PKI .. "/etcd/server.crt " .. PKI ..
        "/etcd/peer.crt >/dev/null 2>&1 || echo 'not signed by etcd/ca.crt'"
      checks[#checks + 1] = "openssl x509 -noout -ext subjectAltName -in " .. PKI .. "/etcd/server.crt 2>/dev/null | grep -q " ..
        q("IP Address:" .. M.address(h)) .. " || echo " .. q("etcd/server.crt is not for " .. M.address(h))
      local r = remote.must(h, table.concat(checks, "; ") .. "; true", { read_only = true, what = "checking etcd's certificates" })
      local why = r.stdout:gsub("%s+$", "")
      return why == "", why:gsub("\n", "; ")
    end,
    apply = function(h)
      if http.dry_run() then
        log.info("dry-run: would write etcd's certificates made on the leader", { node = h.name, files = M.ETCD_FILES })
        return
      end
      local files = host_files()
      remote.must(h, "mkdir -p -m 0755 " .. PKI .. "/etcd", { what = "mkdir " .. PKI .. "/etcd" })
      for _, f in ipairs(M.ETCD_FILES) do
        local base = f:match("([^/]+)$")
        local content = f == "etcd/ca.crt" and files["ca.crt"] or files[h.name .. "/" .. base]
        if not content then error(h.name .. ": the leader made no " .. f, 0) end
        local ok, err, msg = h:write_file(PKI .. "/" .. f, content, { mode = f:match("%.key$") and "0600" or "0644", sudo = true })
        if not ok then error(string.format("%s: writing %s: %s (%s)", h.name, f, err, msg or ""), 0) end
      end
    end,
  }
end

--- env_flags(h, cps, p) → flags, order: a member of a new cluster.
function M.env_flags(h, cps, p)
  local ip, name = M.address(h), nodes.member_name(h)
  local local_too = h.vars.etcd_listen_localhost ~= false
  local cluster = {}
  for _, x in ipairs(cps) do cluster[#cluster + 1] = nodes.member_name(x) .. "=https://" .. M.address(x) .. ":2380" end
  local flags = {
    ["name"] = name, ["data-dir"] = "/var/lib/etcd",
    ["listen-client-urls"] = "https://" .. ip .. ":2379" .. (local_too and ",https://127.0.0.1:2379" or ""),
    ["advertise-client-urls"] = "https://" .. ip .. ":2379",
    ["listen-peer-urls"] = "https://" .. ip .. ":2380", ["initial-advertise-peer-urls"] = "https://" .. ip .. ":2380",
    ["initial-cluster"] = table.concat(cluster, ","), ["initial-cluster-state"] = "new",
    ["initial-cluster-token"] = p.cluster_token,
    ["client-cert-auth"] = "true", ["trusted-ca-file"] = PKI .. "/etcd/ca.crt",
    ["cert-file"] = PKI .. "/etcd/server.crt", ["key-file"] = PKI .. "/etcd/server.key",
    ["peer-client-cert-auth"] = "true", ["peer-trusted-ca-file"] = PKI .. "/etcd/ca.crt",
    ["peer-cert-file"] = PKI .. "/etcd/peer.crt", ["peer-key-file"] = PKI .. "/etcd/peer.key",
    ["snapshot-count"] = "10000",
  }
  local order = { "name", "data-dir", "listen-client-urls", "advertise-client-urls", "listen-peer-urls",
    "initial-advertise-peer-urls", "initial-cluster", "initial-cluster-state", "initial-cluster-token", "client-cert-auth",
    "trusted-ca-file", "cert-file", "key-file", "peer-client-cert-auth", "peer-trusted-ca-file", "peer-cert-file",
    "peer-key-file", "snapshot-count" }
  if local_too then flags["listen-metrics-urls"] = "http://127.0.0.1:2381"; order[#order + 1] = "listen-metrics-urls" end
  return flags, order
end

--- data_dir(user) → operation "etcd data directory": /var/lib/etcd, 0700, the service's user's.
function M.data_dir(user)
  return {
    name = "etcd data directory",
    holds = function(h)
      local r = remote.must(h, "stat -c '%U %a' /var/lib/etcd 2>/dev/null || echo missing", { read_only = true, what = "stat /var/lib/etcd" })
      return r.stdout:match("^" .. user .. " 700") ~= nil, "/var/lib/etcd is " .. r.stdout:gsub("%s+$", "")
    end,
    apply = function(h)
      remote.must(h, "mkdir -p /var/lib/etcd && chown " .. q(user .. ":" .. user) .. " /var/lib/etcd && chmod 0700 /var/lib/etcd",
        { what = "making /var/lib/etcd" })
    end,
  }
end

--- kubeadm_config(p, cps, leader, facts) → the --config for kubeadm init (v1beta4, external etcd).
function M.kubeadm_config(p, cps, leader, facts)
  local init = { apiVersion = "kubeadm.k8s.io/v1beta4", kind = "InitConfiguration",
    localAPIEndpoint = { advertiseAddress = M.address(leader), bindPort = 6443 }, nodeRegistration = { name = leader.name } }
  local cc = { apiVersion = "kubeadm.k8s.io/v1beta4", kind = "ClusterConfiguration", kubernetesVersion = facts.kubernetes,
    clusterName = "kubernetes", imageRepository = "registry.k8s.io", certificatesDir = PKI,
    controlPlaneEndpoint = p.control_plane_endpoint or (M.address(leader) .. ":6443"),
    networking = { podSubnet = p.pod_subnet, serviceSubnet = p.service_subnet, dnsDomain = "cluster.local" },
    etcd = { external = { endpoints = nodes.external_endpoints(cps), caFile = PKI .. "/etcd/ca.crt",
      certFile = PKI .. "/apiserver-etcd-client.crt", keyFile = PKI .. "/apiserver-etcd-client.key" } } }
  return http.yaml_encode(init) .. "---\n" .. http.yaml_encode(cc)
end

--- node_ready(h) → true | false, why (the API's view of the node).
function M.node_ready(h)
  local n, err, msg = k8s.get("nodes", h.name)
  if not n then return false, tostring(msg or err) end
  local info = k8s.node_info(n)
  return info.ready == true, h.name .. " is " .. (info.ready and "Ready" or "NotReady")
end

--- joined(p, leader, how) → operation "kubeadm join" (how "control-plane" or "worker"): the node
--- holds its kubelet.conf and is Ready. A join command (with a fresh token) is made on the leader
--- for each node and never written down (the token is secret).
function M.joined(p, leader, how)
  return {
    name = how == "control-plane" and "kubeadm join --control-plane" or "kubeadm join",
    holds = function(h)
      local has = systemd.read(h, "/etc/kubernetes/kubelet.conf")
      if not has then return false, "no /etc/kubernetes/kubelet.conf" end
      return M.node_ready(h)
    end,
    apply = function(h)
      if how == "control-plane" then
        -- etcd readiness gate: the node's own member healthy before its API server starts on it.
        local ok, why = nodes.gate(function() return nodes.member_ok(h, p) end, p.health_passes, p.health_interval, p.health_timeout)
        if not ok then error(h.name .. ": its etcd member is not ready: " .. tostring(why), 0) end
      end
      local r = remote.must(leader, "kubeadm token create --print-join-command", { what = "kubeadm token create" })
      log.secret(r.stdout:match("%-%-token%s+(%S+)") or "")
      -- Rebuilt from its parts, each quoted: nothing the leader printed reaches a shell as it is.
      local endpoint, token, hash = r.stdout:match("kubeadm join%s+(%S+)%s+%-%-token%s+(%S+)%s+%-%-discovery%-token%-ca%-cert%-hash%s+(%S+)")
      if not endpoint and not http.dry_run() then error(leader.name .. ": kubeadm token create printed no join command", 0) end
      local cmd = "kubeadm join " .. q(endpoint or "ENDPOINT") .. " --token " .. q(token or "TOKEN") ..
        " --discovery-token-ca-cert-hash " .. q(hash or "HASH")
      if how == "control-plane" then cmd = cmd .. " --control-plane --apiserver-advertise-address " .. q(M.address(h)) end
      remote.must(h, cmd, { what = "kubeadm join", timeout = p.join_timeout, stream = true })
      if http.dry_run() then return end
      local n, err, msg = k8s.wait_node(h, { ready = true, timeout = p.join_timeout })
      if not n then error(string.format("%s: not Ready after joining (%s)", h.name, tostring(msg or err)), 0) end
    end,
  }
end

return M
