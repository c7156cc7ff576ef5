-- A kubeadm manifest gone from /etc/kubernetes/manifests: an operator stops a static pod by moving
-- its manifest out (for an etcd restore, to debug the scheduler) and never moves it back, and the
-- kubelet quietly runs one component fewer. recover-static-pods writes it again with kubeadm's own
-- phases (`kubeadm init phase etcd local`, `kubeadm init phase control-plane COMPONENT`, the way
-- kubeadm's guide to reconfiguring a cluster does) from kube-system/kubeadm-config, at the version
-- the node's other components run, and etcd at the image its peers run: putting back what ran,
-- not upgrading it on the side.
local etcd_nodes = require "etcd_nodes"
local facts = require "std.facts"
local http = require "engine.http"
local k8s = require "engine.k8s"
local remote = require "std.remote"
local svc = require "std.etcd_service"

local M = {}

-- kubeadm's phase for each component.
M.PHASE = {
  etcd = "etcd local",
  ["kube-apiserver"] = "control-plane apiserver",
  ["kube-controller-manager"] = "control-plane controller-manager",
  ["kube-scheduler"] = "control-plane scheduler",
}

-- Where the node's kubeadm configuration for the phases is written (kubeadm's own scratch directory).
M.CONFIG = "/etc/kubernetes/tmp/engine-restore.yaml"

local cluster_config  -- kube-system/kubeadm-config's ClusterConfiguration, read once per run

--- config() → ClusterConfiguration (a table). Raises naming the ConfigMap when the API does not give it.
function M.config()
  if cluster_config then return cluster_config end
  local cm, err, msg = k8s.get("configmaps", "kubeadm-config", { namespace = "kube-system" })
  if not cm then
    error("kube-system/kubeadm-config: " .. tostring(msg or err) .. " (kubeadm writes a manifest from it)", 0)
  end
  local cc = http.yaml_decode(((cm.data or {}).ClusterConfiguration) or "")
  if type(cc) ~= "table" then error("kube-system/kubeadm-config holds no ClusterConfiguration", 0) end
  cluster_config = cc
  return cc
end

--- missing(host) → the components whose manifest is gone (etcd first: the API server needs it),
--- and a sentence for an etcd this runbook must leave alone (etcd-to-systemd began on the node).
function M.missing(h)
  local out = facts.missing_manifests(h)
  local where, note = etcd_nodes.where(h), nil
  if where == "missing" and not etcd_nodes.external(M.config()) then
    table.insert(out, 1, "etcd")
  elseif where == "none" and not etcd_nodes.external(M.config()) then
    note = "etcd runs neither as a static Pod nor as etcd.service, and etcd-to-systemd began here (" ..
      svc.ENV_FILE .. "): finish that migration (engine resume its run); no etcd.yaml is written"
  end
  return out, note
end

local function tag(image) return tostring(image or ""):match(":([^:/@]+)$") end

-- The node's advertise address and port: its kube-apiserver manifest's flags, else its Node's InternalIP.
local function advertise(h, pods)
  for _, m in ipairs(pods) do
    if m.file == "kube-apiserver.yaml" then
      local r = remote.must(h, "cat " .. remote.quote(facts.MANIFESTS .. "/kube-apiserver.yaml"),
        { read_only = true, what = "reading the kube-apiserver manifest" })
      local addr = r.stdout:match("%-%-advertise%-address=([^%s\"']+)")
      if addr then return addr, tonumber(r.stdout:match("%-%-secure%-port=(%d+)")) or 6443 end
    end
  end
  local n, err, msg = k8s.get("nodes", h.name)
  if not n then
    error(string.format("%s: its advertise address: no kube-apiserver manifest, and Node %s: %s", h.name, h.name, tostring(msg or err)), 0)
  end
  for _, a in ipairs((n.status or {}).addresses or {}) do
    if a.type == "InternalIP" then return a.address, 6443 end
  end
  error(string.format("%s: its advertise address: no kube-apiserver manifest, and Node %s has no InternalIP", h.name, h.name), 0)
end

--- plan(host, gone, peers) → {config = kubeadm configuration text, version, etcd_tag, address, lines}:
--- reads only. Raises (naming the node) where writing the manifests would not put back what ran:
--- control-plane manifests at two versions (an upgrade stopped midway), peers running etcd at
--- two images, or the member's data directory gone (a manifest would start a new, empty member).
function M.plan(h, gone, peers)
  local cc = M.config()
  local pods = facts.static_pods(h)
  local versions, seen = {}, {}
  for _, m in ipairs(pods) do
    local c = m.file:match("^(.-)%.yaml$")
    local v = M.PHASE[c] and c ~= "etcd" and facts.image_version(m.image)
    if v and not seen[v] then seen[v] = true; versions[#versions + 1] = v .. " (" .. c .. ")" end
  end
  if #versions > 1 then
    table.sort(versions)
    error(string.format("%s: its control-plane manifests name %s: an upgrade stopped midway; finish it " ..
      "(runbooks/k8s-upgrade.lua, engine resume its run) before writing the missing ones", h.name, table.concat(versions, " and ")), 0)
  end
  local version = versions[1] and versions[1]:match("^(%S+)") or ("v" .. tostring(cc.kubernetesVersion or ""):gsub("^v", ""))
  local etcd_tag, is_etcd = nil, gone[1] == "etcd"
  if is_etcd then
    local local_cfg = type(cc.etcd) == "table" and type(cc.etcd["local"]) == "table" and cc.etcd["local"] or {}
    local dir = local_cfg.dataDir or "/var/lib/etcd"
    local r = remote.must(h, "if [ -d " .. remote.quote(dir .. "/member") .. " ]; then echo member; fi",
      { read_only = true, what = "looking for the etcd member's data in " .. dir })
    if not r.stdout:find("member", 1, true) then
      error(string.format("%s: %s/member is gone: an etcd.yaml would start a new, empty etcd, not this node's member. " ..
        "Put its manifest back by hand, then replace the member (runbooks/etcd-member-replace.lua -e node=%s)", h.name, dir, h.name), 0)
    end
    local tags, by_tag = {}, {}
    for _, peer in ipairs(peers) do
      if peer.name ~= h.name then
        for _, m in ipairs(facts.static_pods(peer)) do
          local t = m.file == "etcd.yaml" and tag(m.image)
          if t then
            if not by_tag[t] then by_tag[t] = {}; tags[#tags + 1] = t end
            table.insert(by_tag[t], peer.name)
          end
        end
      end
    end
    if #tags > 1 then
      local said = {}
      for _, t in ipairs(tags) do said[#said + 1] = t .. " on " .. table.concat(by_tag[t], ", ") end
      error(string.format("%s: its peers run etcd %s: an etcd upgrade stopped midway; finish it before writing this member's manifest",
        h.name, table.concat(said, "; ")), 0)
    end
    etcd_tag = tags[1] or local_cfg.imageTag
  end
  local address, port = advertise(h, pods)
  local file_cc = {}
  for k, v in pairs(cc) do file_cc[k] = v end
  file_cc.apiVersion, file_cc.kind, file_cc.kubernetesVersion = "kubeadm.k8s.io/v1beta4", "ClusterConfiguration", version
  if etcd_tag then
    local etcd_cfg = {}
    for k, v in pairs(cc.etcd or {}) do etcd_cfg[k] = v end
    local local_cfg = {}
    for k, v in pairs(etcd_cfg["local"] or {}) do local_cfg[k] = v end
    local_cfg.imageTag = etcd_tag
    etcd_cfg["local"] = local_cfg
    file_cc.etcd = etcd_cfg
  end
  local init = { apiVersion = "kubeadm.k8s.io/v1beta4", kind = "InitConfiguration",
    localAPIEndpoint = { advertiseAddress = address, bindPort = port }, nodeRegistration = { name = h.name } }
  local lines = {}
  for _, c in ipairs(gone) do lines[#lines + 1] = "kubeadm init phase " .. M.PHASE[c] .. " --config " .. M.CONFIG end
  return { config = http.yaml_encode(init) .. "---\n" .. http.yaml_encode(file_cc), version = version, etcd_tag = etcd_tag,
    address = address, lines = lines }
end

--- operation(gone, peers, timeout) → operation "missing manifests written" on one control-plane
--- node: the plan's kubeadm configuration written (0600), kubeadm's phases run, an etcd written
--- back waited for until its member is healthy with a leader. Holds when none of `gone` is missing.
function M.operation(gone, peers, timeout)
  return {
    name = "missing manifests written",
    holds = function(h)
      local now = M.missing(h)
      local left, want = {}, {}
      for _, c in ipairs(gone) do want[c] = true end
      for _, c in ipairs(now) do if want[c] then left[#left + 1] = c end end
      return #left == 0, "still gone: " .. table.concat(left, ", ")
    end,
    apply = function(h)
      local plan = M.plan(h, gone, peers)
      local what = { node = h.name, components = table.concat(gone, ", "), version = plan.version,
        etcd_image_tag = plan.etcd_tag, advertise = plan.address }
      if http.dry_run() then
        what.commands = table.concat(plan.lines, "; ")
        log.info("dry-run: would write " .. M.CONFIG .. " and run kubeadm's phases", what)
        return
      end
      local ok, err, msg = h:write_file(M.CONFIG, plan.config, { mode = "0600", sudo = true })
      if not ok then error(string.format("%s: writing %s: %s (%s)", h.name, M.CONFIG, err, msg or ""), 0) end
      for i, c in ipairs(gone) do
        remote.must(h, plan.lines[i], { what = "kubeadm init phase " .. M.PHASE[c], timeout = 300 })
        if c == "etcd" then
          local up, why = etcd_nodes.gate(function() return etcd_nodes.member_ok(h, { max_raft_lag = 1000 }) end, 2, 1, timeout)
          if not up then error(string.format("%s: etcd written back, but its member: %s", h.name, tostring(why)), 0) end
        end
      end
      log.info("manifests written back", what)
    end,
  }
end

return M
