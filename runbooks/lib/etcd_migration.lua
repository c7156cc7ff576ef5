-- The phases of etcd-to-systemd.lua (seed 003, flow A): the precheck that changes nothing, the
-- per-node migration with its rollback, and kubeadm's move to an external etcd. Each node's etcd
-- is reached through a tunnel over that node's SSH (its client URL, its own certificates).
local etcd = require "engine.etcd"
local facts_mod = require "std.facts"
local http = require "engine.http"
local k8s = require "engine.k8s"
local remote = require "std.remote"
local svc = require "std.etcd_service"
local systemd = require "std.systemd"
local text = require "std.text"

local nodes = require "etcd_nodes"

local M = {}

local q = remote.quote
local gate = nodes.gate
-- The shared pieces, under the names the runbook uses.
M.endpoint, M.endpoints, M.member_name, M.external_endpoints = nodes.endpoint, nodes.endpoints, nodes.member_name,
  nodes.external_endpoints
M.snapshot, M.kept, M.member_ok = nodes.snapshot, nodes.kept, nodes.member_ok

M.PKI = "/etc/kubernetes/pki/etcd"
M.KEYS = { M.PKI .. "/server.key", M.PKI .. "/peer.key" }
M.CERTS = { M.PKI .. "/ca.crt", M.PKI .. "/server.crt", M.PKI .. "/server.key", M.PKI .. "/peer.crt", M.PKI .. "/peer.key",
  M.PKI .. "/healthcheck-client.crt", M.PKI .. "/healthcheck-client.key" }
M.APISERVER = "/etc/kubernetes/manifests/kube-apiserver.yaml"

-- Where a node's etcd manifest is: in the manifests directory, or (a node already migrated, or
-- cut short after the move) in the backup directory.
local function manifest_anywhere(h, p)
  local m = svc.manifest(h)
  if m then m.where = "manifests" return m end
  m = svc.manifest(h, p.backup_dir .. "/etcd.yaml")
  if m then m.where = "backup" end
  return m
end

--- precheck(p, cps, leader) → facts, journaled: nothing changes; every failure is named.
function M.precheck(p, cps, leader)
  local problem, finish = nodes.errors()
  local facts = { nodes = {}, members = {} }

  -- etcd: every member healthy, one leader, the members named as the inventory's hosts (IR-6).
  local eps = M.endpoints(cps, p)
  local health, herr, hmsg = etcd.cluster_health(eps)
  if not health then
    problem("etcd: %s", tostring(hmsg or herr))
  else
    for _, pr in ipairs(health.problems) do problem("etcd: %s", nodes.said({ problems = { pr } })) end
    for _, m in ipairs(health.members) do
      facts.members[m.name] = m.id
      if m.leader then facts.leader = m.name end
    end
  end
  local ok, _, mmsg = etcd.members_match(cps)
  if not ok then problem("etcd members and inventory hosts differ: %s (set etcd_member_name on a host whose member has another name)", tostring(mmsg)) end

  -- The version: what the live members run, and what will be installed (the same: migration does
  -- not upgrade).
  local versions = {}
  for _, h in ipairs(cps) do
    local st = etcd.status(M.endpoint(h, p))
    if st then versions[st.version] = (versions[st.version] or 0) + 1; facts.nodes[h.name] = { version = st.version } end
  end
  local running = next(versions)
  if next(versions, running) then problem("etcd members run different versions: finish or undo that upgrade first") end
  facts.version = p.version or running
  if running and p.version and p.version ~= running then
    problem("etcd runs %s and version=%s was asked: this runbook migrates without upgrading; migrate at %s, then run etcd-upgrade.lua",
      running, p.version, running)
  end

  for _, h in ipairs(cps) do
    local n = facts.nodes[h.name] or {}
    facts.nodes[h.name] = n
    local m = manifest_anywhere(h, p)
    if not m then
      problem("%s: no etcd static Pod manifest in %s or %s: is etcd stacked on this node? (moved out by hand: " ..
        "runbooks/recover-static-pods.lua writes it again)", h.name, svc.MANIFEST, p.backup_dir)
    else
      n.where, n.flags, n.order = m.where, m.flags, m.order
      if m.flags.name ~= M.member_name(h) then
        problem("%s: its etcd manifest names the member %s, not %s (IR-6)", h.name, m.flags.name, M.member_name(h))
      end
      if m.where == "backup" and not systemd.active(h, svc.UNIT) then
        problem("%s: the etcd manifest is in %s but etcd.service is not active: a stopped migration; put the manifest back or resume it",
          h.name, p.backup_dir)
      end
      local dir = m.flags["data-dir"]
      n.data_dir = dir
      local r = remote.must(h, "for f in " .. table.concat((function()
        local quoted = {}
        for i, f in ipairs(M.CERTS) do quoted[i] = q(f) end
        return quoted
      end)(), " ") .. "; do [ -f \"$f\" ] || echo \"missing $f\"; done; [ -f " .. q(dir .. "/member/snap/db") ..
        " ] || echo " .. q("missing " .. dir .. "/member/snap/db") .. "; df -Pk " .. q(dir) .. " | awk 'NR==2 {print \"free \" $4}'",
        { read_only = true, what = "checking etcd's certificates, data directory and free disk" })
      for f in r.stdout:gmatch("missing ([^\n]+)") do problem("%s: %s is missing", h.name, f) end
      local free = tonumber(r.stdout:match("free (%d+)"))
      if free and free < p.min_free_mb * 1024 then
        problem("%s: only %d MiB free where %s is (min_free_mb = %d)", h.name, free // 1024, dir, p.min_free_mb)
      end
    end
  end

  -- The release: its checksum from the release's SHA256SUMS unless given.
  nodes.release(p, facts.version, facts, problem)

  -- kubeadm's ClusterConfiguration: read now, so a cluster it cannot be read from stops here.
  local cm, cerr, cmsg = k8s.get("configmaps", "kubeadm-config", { namespace = "kube-system" })
  if not cm then
    problem("kube-system/kubeadm-config: %s", tostring(cmsg or cerr))
  else
    local cc = http.yaml_decode(((cm.data or {}).ClusterConfiguration) or "")
    if type(cc) ~= "table" then
      problem("kube-system/kubeadm-config holds no ClusterConfiguration")
    elseif p.reconfigure_kubeadm then
      -- kubeadm regenerates each API server from this ClusterConfiguration: at its
      -- kubernetesVersion. A Kubernetes upgrade stopped midway leaves that ahead of the nodes it
      -- did not reach, whose API servers the migration would then upgrade unasked.
      local want = "v" .. tostring(cc.kubernetesVersion or ""):gsub("^v", "")
      for _, h in ipairs(cps) do
        local tag = M.apiserver_version(h)
        if tag and tag ~= want then
          problem("%s: its kube-apiserver runs %s, and kube-system/kubeadm-config says kubernetesVersion %s: kubeadm would " ..
            "regenerate it at %s. A Kubernetes upgrade stopped midway? Finish it first (engine resume its run; " ..
            "runbooks/k8s-upgrade.lua)", h.name, tag, want, want)
        end
      end
    end
  end

  finish()
  return facts
end

--- migrated(p, facts) → operation "etcd under systemd": the node's member served by etcd.service
--- with the same member ID, no etcd manifest left for the kubelet. On a failure after the manifest
--- moved, the node is rolled back and the run stops.
function M.migrated(p, facts)
  return {
    name = "etcd under systemd",
    holds = function(h)
      if svc.manifest(h) then return false, svc.MANIFEST .. " is still there" end
      local active, why = systemd.active(h, svc.UNIT)
      if not active then return false, why end
      local enabled, ewhy = systemd.is_enabled(h, svc.UNIT)
      if not enabled then return false, ewhy end
      local st, reason = M.member_ok(h, p, facts.members[M.member_name(h)])
      return st ~= nil, reason
    end,
    apply = function(h)
      local id = facts.members[M.member_name(h)]
      local dir = facts.nodes[h.name].data_dir
      local backup = p.backup_dir .. "/etcd.yaml"
      if http.dry_run() then
        log.info("dry-run: would move " .. svc.MANIFEST .. " to " .. backup .. ", wait for " .. dir ..
          " to be free, chown -R " .. p.user .. ":" .. p.user .. " " .. dir .. ", systemctl start etcd, and wait for member " ..
          tostring(id) .. " to be healthy", { node = h.name })
        return
      end
      -- 1. The manifest leaves the directory the kubelet reads (seed 000: a copy left there runs).
      local mv = remote.must(h, "mkdir -p " .. q(p.backup_dir) .. " && chmod 0700 " .. q(p.backup_dir) .. " && if [ -f " ..
        q(svc.MANIFEST) .. " ]; then mv -f " .. q(svc.MANIFEST) .. " " .. q(backup) .. " && echo moved; fi",
        { what = "moving the etcd manifest to " .. backup })
      if mv.stdout:find("moved", 1, true) then
        log.info("etcd manifest moved out of the kubelet's directory", { node = h.name, to = backup })
      end
      local failed
      -- Already started by an earlier run (cut short after the start): its own etcd holds the
      -- data directory, and only the gate is left to pass.
      local running = systemd.active(h, svc.UNIT)
      -- 2. The static Pod's etcd gone: never a second etcd on the same data.
      if not running then
        local free, why = gate(function() return svc.datadir_free(h, dir) end, 1, 1, p.stop_timeout)
        if not free then
          failed = string.format("the static Pod's etcd still holds %s after %gs (%s): not starting a second etcd on it",
            dir, p.stop_timeout, why)
        end
      end
      -- 3. The data directory the service's user's, and the service enabled (again: a rolled-back
      -- node's unit was disabled) and started.
      if not failed then
        local cmd = "systemctl enable " .. q(svc.UNIT)
        if not running then
          cmd = "chown -R " .. q(p.user .. ":" .. p.user) .. " " .. q(dir) .. " && " .. cmd .. " && systemctl start " .. q(svc.UNIT)
        end
        local r, err, msg = h:exec(cmd, { sudo = true, timeout = 300 })
        if not r then failed = "systemctl start etcd: " .. tostring(msg or err)
        elseif r.code ~= 0 then
          local journal = h:exec("journalctl -u etcd --no-pager -n 5 | tail -n 5", { sudo = true, read_only = true })
          failed = string.format("systemctl start etcd exited %d: %s%s", r.code, (r.stderr:gsub("%s+$", "")),
            journal and journal.stdout ~= "" and ("\n    journal: " .. journal.stdout:gsub("%s+$", ""):gsub("\n", "\n    ")) or "")
        end
      end
      -- 4. The health gate: the same member, healthy, caught up, several times in a row.
      if not failed then
        local ok, reason = gate(function() return M.member_ok(h, p, id) end, p.health_passes, p.health_interval, p.health_timeout)
        if not ok then failed = string.format("etcd under systemd is not healthy after %gs: %s", p.health_timeout, reason) end
      end
      if failed then
        log.error("etcd migration failed; rolling the node back", { node = h.name, why = failed })
        local rolled, rwhy = M.rollback(h, p, facts)
        if not rolled then
          error(string.format("%s: %s\nROLLBACK FAILED: %s\nThe node needs a hand: etcd.service stopped? %s back in %s? member %s healthy?",
            h.name, failed, rwhy, backup, svc.MANIFEST, tostring(id)), 0)
        end
        error(string.format("%s: %s\nRolled back: etcd.service is stopped and disabled, the static Pod manifest is back in %s, " ..
          "and member %s (%s) is healthy again. The nodes before it stay migrated; none after it was touched. " ..
          "Fix the cause, then `engine resume` this run.", h.name, failed, svc.MANIFEST, M.member_name(h), tostring(id)), 0)
      end
      log.info("etcd runs under systemd", { node = h.name, member = M.member_name(h), id = id })
    end,
  }
end

--- rollback(h, p, facts) → true | nil, why: the unit stopped and disabled, the data directory
--- root's again, the manifest back, the static Pod's member healthy.
function M.rollback(h, p, facts)
  local id = facts.members[M.member_name(h)]
  local dir = facts.nodes[h.name].data_dir
  local backup = p.backup_dir .. "/etcd.yaml"
  local r, err, msg = h:exec("systemctl disable " .. q(svc.UNIT) .. "; systemctl stop " .. q(svc.UNIT) .. " && chown -R root:root " ..
    q(dir) .. " && if [ -f " .. q(backup) .. " ]; then mv -f " .. q(backup) .. " " .. q(svc.MANIFEST) .. "; fi",
    { sudo = true, timeout = 120 })
  if not r then return nil, "cannot run the rollback: " .. tostring(msg or err) end
  if r.code ~= 0 then return nil, "the rollback's commands exited " .. r.code .. ": " .. r.stderr end
  local ok, why = gate(function() return M.member_ok(h, p, id) end, p.health_passes, p.health_interval, p.health_timeout)
  if not ok then return nil, "the static Pod's member is not healthy again: " .. tostring(why) end
  log.warn("node rolled back to the static Pod", { node = h.name, member = M.member_name(h), id = id })
  return true
end

-- kubeadm -------------------------------------------------------------------------------------

--- cluster_configuration(p, cps) → old text, new table: the live ClusterConfiguration with
--- etcd.local replaced by etcd.external and every other field kept (IR-1).
function M.cluster_configuration(p, cps)
  local cm, err, msg = k8s.get("configmaps", "kubeadm-config", { namespace = "kube-system" })
  if not cm then error("kube-system/kubeadm-config: " .. tostring(msg or err), 0) end
  local old = cm.data.ClusterConfiguration
  local cc = http.yaml_decode(old)
  if type(cc) ~= "table" then error("kube-system/kubeadm-config holds no ClusterConfiguration", 0) end
  cc.apiVersion, cc.kind = "kubeadm.k8s.io/v1beta4", "ClusterConfiguration"
  cc.etcd = { external = { endpoints = M.external_endpoints(cps), caFile = M.PKI .. "/ca.crt",
    certFile = "/etc/kubernetes/pki/apiserver-etcd-client.crt", keyFile = "/etc/kubernetes/pki/apiserver-etcd-client.key" } }
  return old, cc
end

function M.is_external(cc, cps)
  local ext = type(cc) == "table" and type(cc.etcd) == "table" and cc.etcd.external
  return type(ext) == "table" and table.concat(ext.endpoints or {}, ",") == table.concat(M.external_endpoints(cps), ",")
end

--- apiserver_flags(host, maybe) → {flag = value}, the manifest's text, its image: the node's
--- kube-apiserver manifest (maybe: a node without one reads as empty instead of raising).
function M.apiserver_flags(h, maybe)
  local r = remote.must(h, "cat " .. q(M.APISERVER) .. (maybe and " 2>/dev/null || true" or ""),
    { read_only = true, what = "reading " .. M.APISERVER })
  local doc = http.yaml_decode(r.stdout)
  local flags = {}
  local c = (((doc or {}).spec or {}).containers or {})[1] or {}
  for _, a in ipairs(c.command or {}) do
    local k, v = tostring(a):match("^%-%-([%w%-%.]+)=(.*)$")
    if k then flags[k] = v end
  end
  return flags, r.stdout, c.image
end

--- apiserver_version(host) → "v1.33.1": the tag of the node's kube-apiserver image, nil when it
--- has none of that shape (a digest, a custom tag) or the node no such manifest.
function M.apiserver_version(h)
  local _, _, image = M.apiserver_flags(h, true)
  return facts_mod.image_version(image)
end

--- uploaded(p, cps, leader) → operation "kubeadm-config external etcd" on the leader: the config
--- file written there, `kubeadm init phase upload-config kubeadm --config` (leader only, seed 003
--- decisions 4 and 11); the ClusterConfiguration's diff logged (and shown under --dry-run).
function M.uploaded(p, cps)
  return {
    name = "kubeadm-config names external etcd",
    holds = function()
      local cm = k8s.get("configmaps", "kubeadm-config", { namespace = "kube-system" })
      local cc = cm and http.yaml_decode(cm.data.ClusterConfiguration)
      return M.is_external(cc, cps), "the ClusterConfiguration's etcd is not the external endpoints"
    end,
    apply = function(h)
      local old, cc = M.cluster_configuration(p, cps)
      local new = http.yaml_encode(cc)
      local diff = text.diff(http.yaml_encode(http.yaml_decode(old)), new)
      log.info("ClusterConfiguration, as kubeadm-config will hold it", { node = h.name, diff = table.concat(diff, "\n") })
      print("ClusterConfiguration (kube-system/kubeadm-config):\n  " .. table.concat(diff, "\n  "))
      if http.dry_run() then
        log.info("dry-run: would write " .. p.kubeadm_config .. " and run kubeadm init phase upload-config kubeadm --config " ..
          p.kubeadm_config, { node = h.name })
        return
      end
      local ok, err, msg = h:write_file(p.kubeadm_config, new, { mode = "0600", sudo = true })
      if not ok then error(string.format("%s: writing %s: %s (%s)", h.name, p.kubeadm_config, err, msg or ""), 0) end
      remote.must(h, "kubeadm init phase upload-config kubeadm --config " .. q(p.kubeadm_config),
        { what = "kubeadm init phase upload-config kubeadm", timeout = 300 })
    end,
  }
end

-- The flags kubeadm derives from etcd.external: these may change; any other may not.
local ETCD_FLAGS = { ["etcd-servers"] = true, ["etcd-cafile"] = true, ["etcd-certfile"] = true, ["etcd-keyfile"] = true }

--- apiserver_external(p, cps) → operation "kube-apiserver uses external etcd" on one node:
--- `kubeadm init phase control-plane apiserver --config` (seed 003, decision 10) with the node's
--- own advertise address, the old manifest kept outside the manifests directory; any flag other
--- than etcd's that the new manifest lost or changed puts the old one back and stops the run (IR-1).
function M.apiserver_external(p, cps)
  local want = table.concat(M.external_endpoints(cps), ",")
  return {
    name = "kube-apiserver uses external etcd",
    holds = function(h)
      local flags = M.apiserver_flags(h)
      return flags["etcd-servers"] == want, "--etcd-servers=" .. tostring(flags["etcd-servers"])
    end,
    apply = function(h)
      local before, old_text, old_image = M.apiserver_flags(h)
      local _, cc = M.cluster_configuration(p, cps)
      local init = { apiVersion = "kubeadm.k8s.io/v1beta4", kind = "InitConfiguration",
        localAPIEndpoint = { advertiseAddress = before["advertise-address"], bindPort = tonumber(before["secure-port"]) or 6443 },
        nodeRegistration = { name = h.name } }
      local config = http.yaml_encode(init) .. "---\n" .. http.yaml_encode(cc)
      local path = p.kubeadm_config:gsub("%.yaml$", "") .. "-" .. h.name .. ".yaml"
      if http.dry_run() then
        log.info("dry-run: would write " .. path .. ", keep " .. M.APISERVER .. " in " .. p.backup_dir ..
          " and run kubeadm init phase control-plane apiserver --config " .. path, { node = h.name, etcd_servers = want })
        return
      end
      local ok, err, msg = h:write_file(path, config, { mode = "0600", sudo = true })
      if not ok then error(string.format("%s: writing %s: %s (%s)", h.name, path, err, msg or ""), 0) end
      local saved = p.backup_dir .. "/kube-apiserver.yaml"
      remote.must(h, "mkdir -p " .. q(p.backup_dir) .. " && cp -p " .. q(M.APISERVER) .. " " .. q(saved),
        { what = "keeping the kube-apiserver manifest in " .. p.backup_dir })
      remote.must(h, "kubeadm init phase control-plane apiserver --config " .. q(path),
        { what = "kubeadm init phase control-plane apiserver", timeout = 300 })
      local after, new_text, new_image = M.apiserver_flags(h)
      local diff = text.diff(old_text, new_text)
      log.info("kube-apiserver manifest regenerated", { node = h.name, diff = table.concat(diff, "\n") })
      if new_image ~= old_image then  -- the precheck's check, for what changed since (a resume)
        remote.must(h, "cp -p " .. q(saved) .. " " .. q(M.APISERVER), { what = "putting the kube-apiserver manifest back" })
        error(string.format("%s: kubeadm's new kube-apiserver manifest runs %s where the node ran %s: kube-system/" ..
          "kubeadm-config's kubernetesVersion is not what this node runs. The old manifest is back. Finish the " ..
          "Kubernetes upgrade (k8s-upgrade.lua), then resume.", h.name, tostring(new_image), tostring(old_image)), 0)
      end
      local lost = {}
      for k, v in pairs(before) do
        if not ETCD_FLAGS[k] and after[k] ~= v then
          lost[#lost + 1] = "--" .. k .. "=" .. v .. (after[k] and (" (now " .. after[k] .. ")") or " (gone)")
        end
      end
      table.sort(lost)
      if #lost > 0 then
        remote.must(h, "cp -p " .. q(saved) .. " " .. q(M.APISERVER), { what = "putting the kube-apiserver manifest back" })
        error(string.format("%s: kubeadm's new kube-apiserver manifest loses flags the running one has: %s. The old manifest " ..
          "is back. Add them to apiServer.extraArgs in kube-system/kubeadm-config, then resume.", h.name, table.concat(lost, ", ")), 0)
      end
      -- The new apiserver up before the next node's (seed 003, flow A step 7): its static pod runs
      -- the new manifest and is ready, /readyz passes, every etcd member healthy.
      local up, why = gate(function()
        local match, _, mwhy = facts_mod.static_pods_match(h)
        if not match then return nil, mwhy end
        local ready, rerr, rmsg = k8s.ready()
        if not ready then return nil, "/readyz: " .. tostring(rmsg or rerr) end
        local health = etcd.cluster_health(etcd.endpoints())
        if not health or not health.healthy then
          return nil, "etcd: " .. (health and nodes.said(health) or "cannot ask")
        end
        return true
      end, p.health_passes, p.health_interval, p.health_timeout)
      if not up then
        error(string.format("%s: the kube-apiserver on external etcd is not ready after %gs: %s (its previous manifest is in %s)",
          h.name, p.health_timeout, tostring(why), saved), 0)
      end
    end,
  }
end

return M
