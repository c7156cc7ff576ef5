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
local api_refused     -- why the API did not give it (then each node's file is read instead)
local from_file = {}  -- node name → its file's ClusterConfiguration

-- The ClusterConfiguration of a kubeadm configuration file's text (documents split on `---`).
local function file_cluster_config(text)
  for doc in ("\n" .. text .. "\n---\n"):gmatch("(.-)\n%-%-%-[^\n]*\n") do
    local d = doc:find("%S") and http.yaml_decode(doc)
    if type(d) == "table" and d.kind == "ClusterConfiguration" then return d end
  end
end

--- config(host, file) → ClusterConfiguration (a table), where it came from. kube-system/kubeadm-config
--- first: kubeadm keeps it current through upgrades. When the API cannot give it (a one-node control
--- plane whose etcd.yaml or kube-apiserver.yaml is the one gone: nothing serves the API), `file` on
--- the node: the kubeadm configuration `kubeadm init --config` used (kubespray keeps one at
--- /etc/kubernetes/kubeadm-config.yaml). nil and a sentence naming both when neither gives one.
function M.config(h, file)
  if cluster_config then return cluster_config, "kube-system/kubeadm-config" end
  if not api_refused then
    local cm, err, msg = k8s.get("configmaps", "kubeadm-config", { namespace = "kube-system" })
    if cm then
      local cc = http.yaml_decode(((cm.data or {}).ClusterConfiguration) or "")
      if type(cc) ~= "table" then error("kube-system/kubeadm-config holds no ClusterConfiguration", 0) end
      cluster_config = cc
      return cc, "kube-system/kubeadm-config"
    end
    api_refused = tostring(msg or err)
    log.warn("kube-system/kubeadm-config cannot be read; each node's kubeadm configuration file is read instead",
      { error = api_refused, file = file })
  end
  local source = h.name .. ":" .. tostring(file)
  if from_file[h.name] then return from_file[h.name], source end
  local why
  if file then
    local r = remote.must(h, "if [ -f " .. remote.quote(file) .. " ]; then cat " .. remote.quote(file) .. "; else echo 'engine: no such file'; fi",
      { read_only = true, what = "reading the kubeadm configuration " .. file })
    if r.stdout == "engine: no such file\n" then
      why = file .. " is not there"
    else
      local cc = file_cluster_config(r.stdout)
      if cc then from_file[h.name] = cc; return cc, source end
      why = file .. " holds no ClusterConfiguration"
    end
  end
  return nil, string.format("kube-system/kubeadm-config: %s; and %s", api_refused, why or "no kubeadm_config file given")
end

--- moved_copies(host, component) → the files under /etc/kubernetes (outside manifests/) that hold
--- a static Pod labelled with the component: where an operator moved the manifest to (`mv
--- manifests/etcd.yaml ..`), or kubeadm's backups of an upgrade (tmp/kubeadm-backup-manifests-*).
function M.moved_copies(h, component)
  local r = remote.must(h, "find /etc/kubernetes -maxdepth 3 -name '*.yaml' -not -path " .. remote.quote(facts.MANIFESTS .. "/*") ..
    " -exec grep -l -E " .. remote.quote("^[[:space:]]*component: " .. component .. "[[:space:]]*$") .. " {} + 2>/dev/null; true",
    { read_only = true, what = "looking for a moved " .. component .. " manifest" })
  local out = {}
  for f in r.stdout:gmatch("[^\n]+") do out[#out + 1] = f end
  table.sort(out)
  return out
end

--- missing(host, file) → the components whose manifest is gone (etcd first: the API server needs it),
--- and a sentence for an etcd this runbook must leave alone (etcd-to-systemd began on the node).
--- file: as config()'s, read only when etcd's manifest is gone.
function M.missing(h, file)
  local out = facts.missing_manifests(h)
  local where, note = etcd_nodes.where(h), nil
  -- etcd belongs here unless kubeadm-config says etcd.external; with no ClusterConfiguration to
  -- read, a member's data on the node says it did, or its API server's etcd on loopback.
  local function stacked()
    local cc = M.config(h, file)
    if cc then return not etcd_nodes.external(cc) end
    return etcd_nodes.has_data(h) or etcd_nodes.apiserver_local(h) == true
  end
  if where == "missing" and stacked() then
    table.insert(out, 1, "etcd")
  elseif where == "none" and stacked() then
    note = "etcd runs neither as a static Pod nor as etcd.service, and etcd-to-systemd began here (" ..
      svc.ENV_FILE .. "): finish that migration (engine resume its run); no etcd.yaml is written"
  end
  return out, note
end

local function tag(image) return tostring(image or ""):match(":([^:/@]+)$") end

-- The node's advertise address and port: its kube-apiserver manifest's flags; else the address its
-- etcd manifest advertises (kubeadm writes both from the same InitConfiguration); else its Node's
-- InternalIP (the API may be what is down).
local function advertise(h, pods)
  local have = {}
  for _, m in ipairs(pods) do have[m.file] = true end
  for _, f in ipairs({ "kube-apiserver.yaml", "etcd.yaml" }) do
    if have[f] then
      local r = remote.must(h, "cat " .. remote.quote(facts.MANIFESTS .. "/" .. f),
        { read_only = true, what = "reading the " .. f:gsub("%.yaml$", "") .. " manifest" })
      local addr = r.stdout:match("%-%-advertise%-address=([^%s\"']+)")
        or r.stdout:match("%-%-advertise%-client%-urls=https?://([^%s\"',:/]+)")
      if addr then return addr, tonumber(r.stdout:match("%-%-secure%-port=(%d+)")) or 6443 end
    end
  end
  local n, err, msg = k8s.get("nodes", h.name)
  if not n then
    error(string.format("%s: its advertise address: no kube-apiserver or etcd manifest, and Node %s: %s", h.name, h.name, tostring(msg or err)), 0)
  end
  for _, a in ipairs((n.status or {}).addresses or {}) do
    if a.type == "InternalIP" then return a.address, 6443 end
  end
  error(string.format("%s: its advertise address: no kube-apiserver or etcd manifest, and Node %s has no InternalIP", h.name, h.name), 0)
end

-- etcd's refusals, before its manifest is written: the member's data gone (a manifest would start
-- a new, empty etcd: the member is replaced, or with too few others left, every member restored
-- from a snapshot), or its peers at two images (an etcd upgrade stopped midway). → the image tag
-- to write: the peers', else cc's etcd.local.imageTag. cc: the ClusterConfiguration, or nil.
local function etcd_checks(h, cc, peers)
  local local_cfg = type(cc) == "table" and type(cc.etcd) == "table" and type(cc.etcd["local"]) == "table" and cc.etcd["local"] or {}
  local dir = local_cfg.dataDir or etcd_nodes.DATA_DIR
  local tags, by_tag, total, running = {}, {}, 1, 0
  for _, peer in ipairs(peers) do
    if peer.name ~= h.name then
      total = total + 1
      for _, m in ipairs(facts.static_pods(peer)) do
        local t = m.file == "etcd.yaml" and tag(m.image)
        if t then
          if not by_tag[t] then by_tag[t] = {}; tags[#tags + 1] = t end
          table.insert(by_tag[t], peer.name)
        end
      end
    end
  end
  if not etcd_nodes.has_data(h, dir) then
    -- What a replacement would join: the peers answering healthy with a leader (one crash-looping
    -- on its own lost data runs, and is not one).
    for _, peer in ipairs(peers) do
      if peer.name ~= h.name then
        local ok, st = pcall(etcd_nodes.member_ok, peer, { max_raft_lag = 1000 })
        if ok and st then running = running + 1 end
      end
    end
    local found, from = M.moved_copies(h, "etcd"), tags[1] and by_tag[tags[1]][1]
    local why = string.format("%s: %s/member holds no member's data (no WAL): an etcd.yaml written now would start a new, " ..
      "empty etcd, not this node's member.", h.name, dir)
    if #(peers.hidden or {}) > 0 then
      error(string.format("%s --limit hides %s, so whether the other members hold a quorum (the member replaced) or not " ..
        "(every member restored from a snapshot) is not known here: runbooks/doctor.lua without --limit says which", why,
        table.concat(peers.hidden, ", ")), 0)
    end
    if running < total // 2 + 1 then
      error(string.format("%s %s, so nothing can replace it. Restore every member from a snapshot, with the manifest's " ..
        "copy (%s): runbooks/etcd-restore.lua -e snapshot=FILE -e manifest=%s", why, total == 1 and "It is the only member" or
        string.format("%d of the other %d members are healthy, fewer than a quorum of %d", running, total - 1, total // 2 + 1),
        #found > 0 and ("found " .. table.concat(found, ", ")) or "none found under /etc/kubernetes",
        #found == 1 and found[1] or "COPY"), 0)
    end
    error(string.format("%s %s (runbooks/etcd-member-replace.lua -e node=%s%s)", why,
      #found > 0 and ("Put its manifest back by hand (found " .. table.concat(found, ", ") .. "), then replace the member") or
      "Replace the member, its manifest written from a peer's", h.name,
      (#found == 0 and from) and (" -e manifest_from=" .. from) or ""), 0)
  end
  if #tags > 1 then
    local said = {}
    for _, t in ipairs(tags) do said[#said + 1] = t .. " on " .. table.concat(by_tag[t], ", ") end
    error(string.format("%s: its peers run etcd %s: an etcd upgrade stopped midway; finish it before writing this member's manifest",
      h.name, table.concat(said, "; ")), 0)
  end
  return tags[1] or local_cfg.imageTag
end

--- plan(host, gone, peers, file) → {config = kubeadm configuration text, version, etcd_tag, address, lines, source}:
--- reads only. Raises (naming the node) where writing the manifests would not put back what ran:
--- control-plane manifests at two versions (an upgrade stopped midway), peers running etcd at
--- two images, or the member's data directory gone (a manifest would start a new, empty member).
--- peers: the control plane's hosts, peers.hidden the names --limit hides of it.
function M.plan(h, gone, peers, file)
  local cc, source = M.config(h, file)
  -- etcd's own refusals first: without its data no manifest is the answer, from a file or not.
  if not cc and gone[1] == "etcd" then etcd_checks(h, nil, peers) end
  if not cc then
    local found = {}
    for _, c in ipairs(gone) do
      for _, f in ipairs(M.moved_copies(h, c)) do found[#found + 1] = f end
    end
    error(string.format("%s: %s (kubeadm writes a manifest from a ClusterConfiguration: give the file kubeadm init used with " ..
      "-e kubeadm_config=PATH, or bring the API back first%s)", h.name, source,
      #found > 0 and ("; or move the manifest back by hand, after checking it is the one that ran: found " .. table.concat(found, ", ")) or ""), 0)
  end
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
  local etcd_tag = gone[1] == "etcd" and etcd_checks(h, cc, peers) or nil
  local address, port = advertise(h, pods)
  local file_cc = {}
  for k, v in pairs(cc) do file_cc[k] = v end
  -- The source's own API version (v1beta3 up to kubeadm 1.30, which knows no v1beta4; their
  -- extraArgs differ in shape), and the InitConfiguration beside it at the same one.
  local api_version = tostring(cc.apiVersion or ""):match("^kubeadm%.k8s%.io/v1beta[34]$") or "kubeadm.k8s.io/v1beta4"
  file_cc.apiVersion, file_cc.kind, file_cc.kubernetesVersion = api_version, "ClusterConfiguration", version
  if etcd_tag then
    local etcd_cfg = {}
    for k, v in pairs(cc.etcd or {}) do etcd_cfg[k] = v end
    local local_cfg = {}
    for k, v in pairs(etcd_cfg["local"] or {}) do local_cfg[k] = v end
    local_cfg.imageTag = etcd_tag
    etcd_cfg["local"] = local_cfg
    file_cc.etcd = etcd_cfg
  end
  local init = { apiVersion = api_version, kind = "InitConfiguration",
    localAPIEndpoint = { advertiseAddress = address, bindPort = port }, nodeRegistration = { name = h.name } }
  local lines = {}
  for _, c in ipairs(gone) do lines[#lines + 1] = "kubeadm init phase " .. M.PHASE[c] .. " --config " .. M.CONFIG end
  return { config = http.yaml_encode(init) .. "---\n" .. http.yaml_encode(file_cc), version = version, etcd_tag = etcd_tag,
    address = address, lines = lines, source = source }
end

--- operation(gone, peers, timeout, file) → operation "missing manifests written" on one control-plane
--- node: the plan's kubeadm configuration written (0600), kubeadm's phases run, an etcd written
--- back waited for until its member is healthy with a leader. Holds when none of `gone` is missing.
--- file: as config()'s.
function M.operation(gone, peers, timeout, file)
  return {
    name = "missing manifests written",
    holds = function(h)
      local now = M.missing(h, file)
      local left, want = {}, {}
      for _, c in ipairs(gone) do want[c] = true end
      for _, c in ipairs(now) do if want[c] then left[#left + 1] = c end end
      return #left == 0, "still gone: " .. table.concat(left, ", ")
    end,
    apply = function(h)
      local plan = M.plan(h, gone, peers, file)
      local what = { node = h.name, components = table.concat(gone, ", "), version = plan.version,
        etcd_image_tag = plan.etcd_tag, advertise = plan.address, from = plan.source }
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
