-- The pieces of runbooks/kubelet-cert-renew.lua: which certificate a node's kubelet uses, a new
-- one issued on a control-plane node by kubeadm, and the node's credentials replaced the way
-- kubeadm's troubleshooting guide does for a failed client certificate rotation. The private key
-- goes from the signer to the node through the controller's memory only: never logged (log.secret),
-- never journaled, never in a command line.
local certs = require "std.certs"
local http = require "engine.http"
local remote = require "std.remote"
local tls = require "engine.tls"

local M = {}

M.KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
M.PKI = "/var/lib/kubelet/pki"
M.CURRENT = M.PKI .. "/kubelet-client-current.pem"

--- in_use(host) → {name, file, cert | error}: the client certificate the node's kubelet uses:
--- kubelet.conf's embedded one (kubeadm join's, before a rotation), else the file it points at
--- (kubelet-client-current.pem, kept by the kubelet's rotation); an error row when kubelet.conf
--- points at a file that is gone. nil when the node has no kubelet.conf (not joined).
function M.in_use(h)
  local by = {}
  for _, row in ipairs(certs.files(h, {})) do by[row.name] = row end
  local row = by["kubelet.conf"] or by["kubelet-client"]
  if row then return row end
  local r = remote.must(h, "if [ -f " .. remote.quote(M.KUBELET_CONF) .. " ]; then echo conf; fi", { read_only = true,
    what = "looking for " .. M.KUBELET_CONF })
  if r.stdout:find("conf", 1, true) then
    return { name = "kubelet.conf", file = M.KUBELET_CONF, error = "its client certificate is gone (" .. M.CURRENT .. " or the file it names)" }
  end
  return nil
end

--- due(row, under_days) → true, why when the certificate (M.in_use's row) must be replaced: unreadable, gone, expired,
--- or (under_days) with fewer days left.
function M.due(row, under_days)
  if row.error then return true, row.file .. ": " .. row.error end
  if row.cert.expired then return true, "expired " .. row.cert.not_after_text end
  if under_days and row.cert.days_left < under_days then
    return true, string.format("%d days left (%s)", row.cert.days_left, row.cert.not_after_text)
  end
  return false
end

--- signer_problem(host) → nil | why not: the node holds the cluster CA's key and a CA certificate that has
--- not expired (kubeadm kubeconfig user signs with it).
function M.signer_problem(h)
  local r = remote.must(h, "if [ -f /etc/kubernetes/pki/ca.key ]; then echo key; fi", { read_only = true,
    what = "looking for the cluster CA's key" })
  if not r.stdout:find("key", 1, true) then return "no /etc/kubernetes/pki/ca.key (an external CA?)" end
  for _, row in ipairs(certs.files(h, { control_plane = true })) do
    if row.name == "ca" then
      if row.error then return "/etc/kubernetes/pki/ca.crt: " .. row.error end
      if row.cert.expired then return "its CA /etc/kubernetes/pki/ca.crt expired " .. row.cert.not_after_text end
      return nil
    end
  end
  return "no /etc/kubernetes/pki/ca.crt"
end

--- kubelet_conf(server, ca_data, node) → kubelet.conf's text as kubeadm join leaves it once the
--- kubelet has rotated: the cluster, and the client certificate and key in kubelet-client-current.pem.
function M.kubelet_conf(server, ca_data, node)
  local user = "system:node:" .. node
  return http.yaml_encode {
    apiVersion = "v1", kind = "Config",
    clusters = { { name = "kubernetes", cluster = { server = server, ["certificate-authority-data"] = ca_data } } },
    contexts = { { name = user .. "@kubernetes", context = { cluster = "kubernetes", user = user } } },
    ["current-context"] = user .. "@kubernetes",
    users = { { name = user, user = { ["client-certificate"] = M.CURRENT, ["client-key"] = M.CURRENT } } },
  }
end

--- cluster_of(host) → server, certificate-authority-data: read from the node's kubelet.conf, its
--- key lines left on the node.
function M.cluster_of(h)
  local r = remote.must(h, "grep -v -e client-key-data " .. remote.quote(M.KUBELET_CONF), { read_only = true,
    what = "reading the cluster from " .. M.KUBELET_CONF })
  local doc = http.yaml_decode(r.stdout)
  local cluster = type(doc) == "table" and type(doc.clusters) == "table" and doc.clusters[1] and doc.clusters[1].cluster
  if type(cluster) ~= "table" or not cluster.server or not cluster["certificate-authority-data"] then
    error(string.format("%s: %s names no server and CA: write it by hand (kubeadm's troubleshooting guide)", h.name, M.KUBELET_CONF), 0)
  end
  return cluster.server, cluster["certificate-authority-data"]
end

--- issue(signer, node) → PEM (certificate then key), the certificate's serial: `kubeadm kubeconfig
--- user --org system:nodes --client-name system:node:NODE` on the signer. The key is declared a
--- secret before anything could log it.
function M.issue(signer, node)
  local r = remote.must(signer, "kubeadm kubeconfig user --org system:nodes --client-name " ..
    remote.quote("system:node:" .. node), { what = "kubeadm kubeconfig user for system:node:" .. node })
  local key_b64 = r.stdout:match("client%-key%-data:%s*(%S+)")
  if key_b64 then log.secret(key_b64) end
  local doc = http.yaml_decode(r.stdout)
  local user = type(doc) == "table" and type(doc.users) == "table" and doc.users[1] and doc.users[1].user or {}
  local crt, key = http.base64_decode(user["client-certificate-data"] or ""), http.base64_decode(user["client-key-data"] or "")
  if not crt or crt == "" or not key or key == "" then
    error(string.format("%s: kubeadm kubeconfig user printed no client certificate and key", signer.name), 0)
  end
  log.secret(key)
  local parsed, _, msg = tls.inspect_all(crt)
  if not parsed then error(string.format("%s: the certificate kubeadm issued: %s", signer.name, tostring(msg)), 0) end
  return crt:gsub("%s*$", "\n") .. key:gsub("%s*$", "\n"), parsed[1]
end

--- install(host, pem, server, ca_data, backup) : the old kubelet.conf and kubelet-client files kept
--- in the backup directory (0700), the new PEM written as kubelet-client-TIME.pem (0600, atomic)
--- with kubelet-client-current.pem pointing at it, and kubelet.conf rewritten to use it.
function M.install(h, pem, server, ca_data, backup)
  local q = remote.quote
  remote.must(h, "umask 077 && mkdir -p " .. q(backup) .. " && cp -a " .. q(M.KUBELET_CONF) .. " " .. q(backup) .. "/ && " ..
    "for f in " .. q(M.PKI) .. "/kubelet-client-*; do [ -e \"$f\" ] && cp -a \"$f\" " .. q(backup) .. "/; done; " ..
    "mkdir -p " .. q(M.PKI), { what = "keeping kubelet.conf and the kubelet's client certificates in " .. backup })
  local file = M.PKI .. "/kubelet-client-" .. os.date("!%Y-%m-%d-%H-%M-%S") .. ".pem"
  local ok, err, msg = h:write_file(file, pem, { mode = "0600", sudo = true })
  if not ok then error(string.format("%s: writing %s: %s (%s)", h.name, file, err, msg or ""), 0) end
  remote.must(h, "ln -sfn " .. q(file) .. " " .. q(M.CURRENT) .. ".tmp && mv -Tf " .. q(M.CURRENT) .. ".tmp " .. q(M.CURRENT),
    { what = "pointing " .. M.CURRENT .. " at " .. file })
  ok, err, msg = h:write_file(M.KUBELET_CONF, M.kubelet_conf(server, ca_data, h.name), { mode = "0600", sudo = true })
  if not ok then error(string.format("%s: writing %s: %s (%s)", h.name, M.KUBELET_CONF, err, msg or ""), 0) end
  return file
end

return M
