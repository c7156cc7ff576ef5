-- std.certs: facts about the certificates of a kubeadm node, read and never changed. The files
-- kubeadm manages (what `kubeadm certs check-expiration` lists) and the kubelet's client
-- certificate, parsed with engine.tls, not by reading kubeadm's table; and what each endpoint of a
-- control-plane node really serves. No private key leaves the node: kubeconfigs are read without
-- their client-key-data and PEM files without their key blocks.
local http = require "engine.http"
local inventory = require "engine.inventory"
local remote = require "std.remote"
local tls = require "engine.tls"

local M = {}

-- The control plane's files, relative to /etc/kubernetes (kubeadm's layout), and the kubelet's.
M.CONTROL_PLANE_FILES = {
  "pki/ca.crt", "pki/apiserver.crt", "pki/apiserver-kubelet-client.crt", "pki/apiserver-etcd-client.crt",
  "pki/front-proxy-ca.crt", "pki/front-proxy-client.crt", "pki/etcd/ca.crt", "pki/etcd/server.crt",
  "pki/etcd/peer.crt", "pki/etcd/healthcheck-client.crt", "admin.conf", "super-admin.conf",
  "controller-manager.conf", "scheduler.conf",
}
M.NODE_FILES = { "kubelet.conf", "/var/lib/kubelet/pki/kubelet-client-current.pem" }

-- kubeadm's name for a file: pki/apiserver.crt → apiserver, pki/etcd/server.crt → etcd-server.
local function name_of(file)
  if file:match("^/var/lib/kubelet/") then return "kubelet-client" end
  if file:match("%.conf$") then return file end
  local etcd = file:match("^pki/etcd/(.+)%.crt$")
  if etcd then return "etcd-" .. etcd end
  return (file:match("^pki/(.+)%.crt$")) or file
end

--- files(host, {control_plane = true}) → list of {name, file, cert} | {name, file, error}: every
--- certificate kubeadm manages on the node (with control_plane) and the kubelet's client
--- certificate, in kubeadm's names (apiserver, etcd-server, admin.conf, kubelet-client...). A file
--- that is not there is left out; one that cannot be parsed carries its error.
function M.files(h, opts)
  h = inventory.host(h, "certs.files")
  opts = opts or {}
  local list = {}
  if opts.control_plane then for _, f in ipairs(M.CONTROL_PLANE_FILES) do list[#list + 1] = f end end
  for _, f in ipairs(M.NODE_FILES) do list[#list + 1] = f end
  -- Certificates only: key lines and blocks are dropped on the node.
  local out = {}
  for _, section in ipairs(remote.read_files(h, "/etc/kubernetes", list, {
    what = "reading the certificates under /etc/kubernetes",
    filter = "case \"$f\" in *.conf) grep -v -e client-key-data -e '^ *token:' \"$f\";; " ..
      "*) sed -n '/-BEGIN CERTIFICATE-/,/-END CERTIFICATE-/p' \"$f\";; esac" })) do
    local file, body = section.file, section.body
    local row = { name = name_of(file), file = file:match("^/") and file or ("/etc/kubernetes/" .. file) }
    local pem = body
    if file:match("%.conf$") then
      pem = nil
      local doc = http.yaml_decode(body)
      local user = type(doc) == "table" and type(doc.users) == "table" and doc.users[1] and doc.users[1].user
      if type(user) == "table" and user["client-certificate-data"] then
        pem = http.base64_decode(user["client-certificate-data"])
      elseif type(user) == "table" and user["client-certificate"] then
        row.error = "points at " .. tostring(user["client-certificate"]) .. " (read there)"
      else
        row.error = "no client certificate in the kubeconfig"
      end
    end
    if pem then
      local certs, _, msg = tls.inspect_all(pem)
      if certs then row.cert = certs[1] else row.error = msg end
    end
    if not (row.error and row.error:match("^points at")) then out[#out + 1] = row end
  end
  return out
end

--- endpoints(host) → list of {name, endpoint, file, via}: what a kubeadm control-plane node serves
--- and the file each should be serving (the scheduler's and controller-manager's certificates are
--- their own, self-signed, with no file to compare).
function M.endpoints(h)
  h = inventory.host(h, "certs.endpoints")
  local v = h.vars or {}
  local addr = v.etcd_access_address or v.ansible_host or h.name
  if tostring(addr):find(":", 1, true) then addr = "[" .. addr .. "]" end
  local port = tonumber(v.k8s_apiserver_port) or 6443
  -- The scheduler and controller-manager listen where kubespray's *_bind_address vars say; kubeadm's
  -- default is 127.0.0.1, reached through the node; 0.0.0.0 (kubespray's default) at its address.
  local function component(name, var, p)
    local bind = v[var]
    if bind == nil or bind == "127.0.0.1" or bind == "::1" then return { name = name, endpoint = "127.0.0.1:" .. p, via = h } end
    if bind == "0.0.0.0" or bind == "::" then bind = addr end
    if tostring(bind):find(":", 1, true) and not tostring(bind):match("^%[") then bind = "[" .. bind .. "]" end
    return { name = name, endpoint = bind .. ":" .. p }
  end
  return {
    { name = "apiserver", endpoint = addr .. ":" .. port, file = "/etc/kubernetes/pki/apiserver.crt" },
    { name = "etcd-server", endpoint = addr .. ":" .. (v.etcd_client_port or 2379), file = "/etc/kubernetes/pki/etcd/server.crt" },
    { name = "etcd-peer", endpoint = addr .. ":" .. (v.etcd_peer_port or 2380), file = "/etc/kubernetes/pki/etcd/peer.crt" },
    component("kube-scheduler", "kube_scheduler_bind_address", 10259),
    component("kube-controller-manager", "kube_controller_manager_bind_address", 10257),
  }
end

--- served(host, {timeout}) → the endpoints above, each with cert (what it serves) or error (the word
--- and message: a component that is down is "refused").
function M.served(h, opts)
  local out = {}
  for _, ep in ipairs(M.endpoints(h)) do
    local chain, err, msg = tls.served(ep.endpoint, { via = ep.via, timeout = (opts or {}).timeout or 5 })
    ep.cert = chain and chain[1]
    if not chain then ep.error = err .. (msg and (": " .. msg) or "") end
    out[#out + 1] = ep
  end
  return out
end

return M
