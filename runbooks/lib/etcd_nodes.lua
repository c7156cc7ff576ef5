-- What the etcd runbooks share (etcd-to-systemd, etcd-upgrade, etcd-maintenance): a tunnel to
-- each control-plane node's etcd over that node's SSH (its client URL, its own certificates), the
-- member gate (same member ID, healthy, a leader, caught up), a bounded wait for N passes in a row,
-- and the verified snapshot taken before anything changes (seed 003, IR-4).
local etcd = require "engine.etcd"
local http = require "engine.http"
local remote = require "std.remote"
local ssh = require "engine.ssh"
local svc = require "std.etcd_service"
local time = require "engine.time"

local M = {}

-- Tunnels, one per control-plane node, to the address its etcd serves clients on.
local tunnels = {}

-- Every tunnel opened so far, as etcd's endpoints (in the order opened).
local order = {}
local function configure_all()
  local eps = {}
  for _, name in ipairs(order) do eps[#eps + 1] = tunnels[name].url end
  etcd.configure { endpoints = eps }
end

--- endpoint(host, p) → "https://127.0.0.1:PORT": a tunnel to the node's etcd (opened once; every
--- tunnel open is one of etcd's configured endpoints).
function M.endpoint(h, p)
  local t = tunnels[h.name]
  if t then return t.url end
  if not next(tunnels) then
    -- The first node's certificates (the healthcheck client) serve for every node: one CA.
    local first, err, msg = etcd.via_node(h, { address = h.vars.etcd_access_address })
    if not first then error(string.format("%s: cannot reach etcd over SSH: %s", h.name, tostring(msg or err)), 0) end
    tunnels[h.name] = { t = first, url = etcd.endpoints()[1] }
  else
    local tn, err, msg = ssh.tunnel(h, h.vars.etcd_access_address or "127.0.0.1", tonumber(h.vars.etcd_client_port) or 2379)
    if not tn then error(string.format("%s: cannot open a tunnel to etcd: %s", h.name, tostring(msg or err)), 0) end
    tunnels[h.name] = { t = tn, url = "https://127.0.0.1:" .. tn.port }
  end
  order[#order + 1] = h.name
  configure_all()
  return tunnels[h.name].url
end

--- control_plane(inv, p, why) → the hosts of p.control_plane. Raises when it has none, and when
--- --limit hides some of them: a run that counts etcd's members (a quorum, the member list against
--- the inventory) would count too few and tell the operator the wrong thing: with `--limit cp3`, a
--- member of three whose data is lost would be "the only member", to be restored from a snapshot.
--- why: what the runbook needs every member for.
function M.control_plane(inv, p, why)
  local hidden = inv:hidden(p.control_plane)
  if #hidden > 0 then
    error(string.format("--limit hides %s of %s: %s. Run it without --limit", table.concat(hidden, ", "), p.control_plane, why), 0)
  end
  local cps = inv:hosts(p.control_plane)
  if #cps == 0 then error(string.format("inventory group %s has no hosts", p.control_plane), 0) end
  return cps
end

--- endpoints(hosts, p) → every node's tunnel endpoint (all of them etcd's endpoints).
function M.endpoints(hosts, p)
  local eps = {}
  for _, h in ipairs(hosts) do eps[#eps + 1] = M.endpoint(h, p) end
  return eps
end

function M.member_name(h) return h.vars.etcd_member_name or h.name end

--- external_endpoints(hosts) → the client URLs the API servers will use: one per control-plane
--- host, from the inventory (seed 003, decision 12).
function M.external_endpoints(hosts)
  local out = {}
  for _, h in ipairs(hosts) do
    local addr = h.vars.etcd_access_address or h.vars.ansible_host or h.name
    out[#out + 1] = "https://" .. addr .. ":" .. tostring(h.vars.etcd_client_port or 2379)
  end
  return out
end

-- This process took the run's snapshot (its step ran, and engine.etcd said where it is).
local taken = false

--- snapshot(p, leader) → {path, size, sha256, revision}: taken through the leader's tunnel,
--- streamed, its sha256 trailer checked (what etcdutl snapshot status checks), kept on this machine.
function M.snapshot(p, leader)
  if http.dry_run() then
    log.info("dry-run: would take an etcd snapshot", { node = leader.name, dir = p.snapshot_dir,
      keep = (p.snapshot_keep or 0) > 0 and p.snapshot_keep or nil })
    return { path = "(dry run)", size = 0, sha256 = "" }
  end
  if (p.snapshot_keep or 0) < 0 then
    error(string.format("param snapshot_keep: %d is below 0 (0 keeps every snapshot)", p.snapshot_keep), 0)
  end
  local path = string.format("%s/etcd-%s-%s.db", p.snapshot_dir, os.date("!%Y%m%dT%H%M%SZ"), leader.name)
  local s, err, msg = etcd.snapshot(M.endpoint(leader, p), path)
  if not s then error("etcd snapshot: " .. tostring(msg or err), 0) end
  if s.size < 4096 then error(string.format("etcd snapshot %s is only %d bytes", path, s.size), 0) end
  taken = true
  -- Only once the new one is kept and checked: older ones beyond snapshot_keep go. A failure here
  -- is said, never a stop: the run has the snapshot it needs.
  if (p.snapshot_keep or 0) > 0 then
    local pruned, perr, pmsg = etcd.prune_snapshots(p.snapshot_dir, p.snapshot_keep, path)
    if not pruned then log.warn("old etcd snapshots not removed", { dir = p.snapshot_dir, error = pmsg or perr }) end
  end
  return { path = path, size = s.size, sha256 = s.sha256, revision = s.revision }
end

--- kept(snap): after the snapshot's step. A resumed run does not take it again (the step is
--- journaled); this says which snapshot the run holds, as the taking said it in the first run.
function M.kept(snap)
  if not taken and not http.dry_run() then
    log.info("etcd snapshot taken before the resume", { path = snap.path, size = snap.size, sha256 = snap.sha256,
      revision = snap.revision })
  end
end

--- member_ok(h, p, id) → status | nil, why: the node's member answers as member `id`, healthy,
--- with a leader, its raft index within max_raft_lag of the leader's.
function M.member_ok(h, p, id)
  local ep = M.endpoint(h, p)
  -- The status first: a member without a leader says so at once, where its health check (a
  -- linearizable read) waits for etcd's request timeout to say the same.
  local st, serr, smsg = etcd.status(ep)
  if not st then return nil, "no status: " .. tostring(smsg or serr) end
  if id and st.member_id ~= id then
    return nil, string.format("answers as member %s, not %s: a new member on this node", st.member_id, id)
  end
  if not st.leader or st.leader == "0" then return nil, "has no leader" end
  local ok, err, msg = etcd.health(ep)
  if not ok then return nil, "not healthy: " .. tostring(msg or err) end
  for _, other in pairs(tunnels) do
    local lst = other.url ~= ep and etcd.status(other.url)
    if lst and lst.member_id == st.leader then
      if lst.raft_index - st.raft_index > p.max_raft_lag then
        return nil, string.format("raft index %d, %d behind the leader's", st.raft_index, lst.raft_index - st.raft_index)
      end
    end
  end
  return st
end

--- A failing gate check is asked again after this many seconds (or the interval, if shorter).
M.GATE_RETRY = 0.5

--- gate(check, passes, interval, timeout) → true | nil, why: waits until check() passes `passes` times in a row (interval apart), within timeout; else
-- nil and the last reason. A check that fails is asked again after GATE_RETRY, not a whole
-- interval: a member or an apiserver that comes up between two checks starts its row of passes
-- then, not up to an interval later (each etcd runbook passes several gates a member, in turn).
function M.gate(check, passes, interval, timeout)
  local deadline, row, why = time.monotonic() + timeout, 0, nil
  while true do
    local ok, reason = check()
    -- A dry run changed nothing to wait for: what the check says now is the answer.
    if http.dry_run() then return ok and true or nil, reason end
    if ok then
      row = row + 1
      if row >= passes then return true end
    else
      row, why = 0, reason
    end
    if time.monotonic() > deadline then return nil, why or "not passing long enough" end
    sleep(row > 0 and interval or math.min(interval, M.GATE_RETRY))
  end
end

--- PARAMS: the params every etcd runbook takes, the same way (merged into each runbook's own).
M.PARAMS = {
  download_url = { type = "string",
    help = "release tarball URL, {version} filled in (default: the hosts' etcd_download_url var, else etcd's GitHub releases)" },
  sha256 = { type = "string", pattern = "^%x+$", help = "the tarball's sha256 (default: from SHA256SUMS beside it)" },
  health_timeout = { type = "duration", default = "3m", help = "for a member to pass the gate" },
  health_passes = { type = "integer", min = 1, default = 3, help = "gate passes in a row" },
  health_interval = { type = "duration", default = "2s" },
  max_raft_lag = { type = "integer", min = 0, default = 1000, help = "raft entries a member may be behind the leader and pass" },
}

--- params(own) → own with M.PARAMS added (own's entries win).
function M.params(own)
  for k, v in pairs(M.PARAMS) do if own[k] == nil then own[k] = v end end
  return own
end

--- errors() → problem(fmt, ...), finish(): a precheck's list of problems, every one named, raised
--- together as "precheck failed, nothing was changed".
function M.errors()
  local bad = {}
  local function problem(fmt, ...) bad[#bad + 1] = string.format(fmt, ...) end
  local function finish()
    if #bad > 0 then error("precheck failed, nothing was changed:\n  " .. table.concat(bad, "\n  "), 0) end
  end
  return problem, finish
end

--- release(p, version, facts, problem): facts.url and facts.sha256 for the release (the checksum
--- from its SHA256SUMS unless p.sha256 pins it); a problem when it cannot be found.
function M.release(p, version, facts, problem)
  facts.url = p.download_url:gsub("{version}", version or "0.0.0")
  facts.sha256 = p.sha256
  if not facts.sha256 and version then
    local sum, why = M.checksum(facts.url)
    if not sum then problem("%s", why) end
    facts.sha256 = sum
  end
end

--- lease() → the cluster's leases kube-system/engine-cluster (one engine run changing the cluster at
--- a time: std.cluster_lease) and kube-system/engine-etcd (one etcd runbook at a time), held until
--- released or the run ends; a lost lease stops the run. nil under --dry-run.
function M.lease()
  if http.dry_run() then return nil end
  local lease, err, msg = require("std.cluster_lease").take("engine-etcd")
  if not lease then error("the cluster lease " .. tostring(msg or err), 0) end
  return lease
end

-- The tunnel the run's API calls go through when only a node's own API server answers.
local api_route

--- api(cps) → whether the API answers: first thing in an etcd runbook. When the API answers only
--- through a control-plane node's own API server (seed 002: the controller's route cut, SSH still
--- up), every API call of the run goes that way, the cluster Lease and kubeadm-config included;
--- said in one sentence. When nothing answers, nothing changes (a later call tries again): the
--- first call that needs the API says why.
function M.api(cps)
  if api_route then return true end
  local route, err = require("std.kubeadm").reach_api(cps)
  api_route = route
  return route ~= nil or err == nil
end

--- said(health) → cluster_health's problems in one line; a NOSPACE alarm (a database at its quota,
--- every write refused) with the runbook that clears it.
function M.said(health)
  local said = table.concat(health.problems, "; ")
  if said:find("alarm NOSPACE", 1, true) then
    said = said .. " (runbooks/etcd-maintenance.lua -e mode=defrag -e compact=true compacts, defragments, then disarms it)"
  end
  return said
end

--- flags(host) → the node's etcd flags (name → value): its EnvironmentFile under systemd, else its
--- static Pod manifest; nil when it has neither.
function M.flags(h)
  local env = require("std.systemd").read(h, svc.ENV_FILE)
  if env then return svc.flags_of_env(env) end
  local m = svc.manifest(h)
  return m and m.flags
end

--- quota(host[, flags]) → the member's --quota-backend-bytes (etcd's default 2 GiB when the flag is
--- not given); flags: M.flags(host) already read.
function M.quota(h, flags)
  return math.tointeger(tonumber((flags or M.flags(h) or {})["quota-backend-bytes"] or "")) or (2 << 30)
end

--- DATA_DIR: kubeadm's etcd data directory (etcd.local.dataDir's default).
M.DATA_DIR = "/var/lib/etcd"

--- has_data(host, dir) → true when dir/member/wal (default DATA_DIR) holds a WAL file: a member's
--- data, which a manifest written with it starts as that member again (and without it, as a new
--- one). etcd's own test (wal.Exist): a member whose data was lost and that tried to start again
--- leaves member/snap behind, and no WAL.
function M.has_data(h, dir)
  dir = dir or M.DATA_DIR
  local r = remote.must(h, "set -- " .. remote.quote(dir .. "/member/wal") .. "/*.wal; if [ -f \"$1\" ]; then echo member; fi",
    { read_only = true, what = "looking for the etcd member's data in " .. dir })
  return r.stdout:find("member", 1, true) ~= nil
end

--- apiserver_local(host) → true when the node's kube-apiserver manifest names an etcd on the node
--- itself (--etcd-servers at 127.0.0.1, localhost or [::1]: kubeadm's stacked etcd), false when it
--- names others, nil with no such manifest. What says etcd belonged here when neither
--- kubeadm-config (the API down) nor the member's data (lost) can.
function M.apiserver_local(h)
  local file = "/etc/kubernetes/manifests/kube-apiserver.yaml"
  local r = remote.must(h, "if [ -f " .. remote.quote(file) .. " ]; then cat " .. remote.quote(file) .. "; fi",
    { read_only = true, what = "reading " .. file })
  local servers = r.stdout:match("%-%-etcd%-servers=([^%s\"']+)")
  if not servers then return nil end
  for u in servers:gmatch("[^,]+") do
    local host = u:match("^%a+://([^/]+):%d+") or u:match("^%a+://([^/:]+)")
    if host == "127.0.0.1" or host == "localhost" or host == "[::1]" then return true end
  end
  return false
end

--- where(host) → "static" | "systemd" | "both" | "none" | "missing": how the node's etcd runs, as
--- kubeadm's static Pod (etcd.yaml in the kubelet's manifests) or as an active etcd.service. "none":
--- neither, where etcd-to-systemd has begun (its environment file is there: a migration stopped
--- midway, or the unit down); "missing": neither, and no migration ever touched the node: either
--- no etcd belongs here (external etcd) or its manifest is gone (recover-static-pods). One read.
function M.where(h)
  local r = remote.must(h, "if [ -f " .. remote.quote(svc.MANIFEST) .. " ]; then echo static; fi; if [ -f " ..
    remote.quote(svc.ENV_FILE) .. " ]; then echo migrated; fi; systemctl is-active " ..
    remote.quote(svc.UNIT) .. " || true", { read_only = true, what = "finding how etcd runs" })
  local static, unit, migrated = false, false, false
  for line in r.stdout:gmatch("[^\n]+") do
    if line == "static" then static = true elseif line == "active" then unit = true elseif line == "migrated" then migrated = true end
  end
  return static and unit and "both" or static and "static" or unit and "systemd" or migrated and "none" or "missing"
end

--- runs(where) → true when M.where's answer has an etcd running on the node.
function M.runs(where) return where == "static" or where == "systemd" or where == "both" end

--- external(cc) → true when kubeadm's ClusterConfiguration `cc` names an external etcd.
function M.external(cc)
  return type(cc) == "table" and type(cc.etcd) == "table" and type(cc.etcd.external) == "table"
end

--- split(where, cc) → list of sentences: the control-plane nodes' etcd (`where`: host name → what
--- M.where said) against kubeadm-config's ClusterConfiguration `cc`. An etcd-to-systemd.lua
--- migration stopped midway leaves some members under systemd while kubeadm still says etcd.local
--- (or the reverse): kubeadm's next upgrade would then upgrade a static Pod that is not there, or
--- start one beside the service. A node whose etcd.yaml is gone with no migration begun is named
--- apart: recover-static-pods puts the manifest back. Empty when they agree.
function M.split(where, cc)
  local external = M.external(cc)
  local by = { static = {}, systemd = {}, both = {}, none = {}, missing = {} }
  for name, w in pairs(where) do table.insert(by[w], name) end
  for _, list in pairs(by) do table.sort(list) end
  local out = {}
  if #by.both > 0 then
    out[#out + 1] = string.format("etcd runs both as kubeadm's static Pod and as etcd.service on %s: two etcds for one member",
      table.concat(by.both, ", "))
  end
  if not external and #by.missing > 0 then
    out[#out + 1] = M.missing_sentence(by.missing)
  end
  if not external and (#by.systemd > 0 or #by.none > 0) then
    local parts = {}
    if #by.systemd > 0 then parts[#parts + 1] = "under systemd on " .. table.concat(by.systemd, ", ") end
    if #by.none > 0 then parts[#parts + 1] = "neither a static Pod nor an active etcd.service on " .. table.concat(by.none, ", ") end
    out[#out + 1] = string.format("etcd runs %s while kubeadm-config says etcd.local%s: an etcd-to-systemd.lua migration " ..
      "stopped midway; finish it (engine resume RUN, or run it again) before kubeadm changes the control plane",
      table.concat(parts, "; "), #by.static > 0 and (" (a static Pod on " .. table.concat(by.static, ", ") .. ")") or "")
  elseif external and #by.static > 0 then
    out[#out + 1] = string.format("etcd runs as kubeadm's static Pod on %s while kubeadm-config names an external etcd: " ..
      "a migration not finished, or a manifest put back; finish etcd-to-systemd.lua (engine resume RUN) or move the manifest out",
      table.concat(by.static, ", "))
  end
  return out
end

--- missing_sentence(names) → what a node whose etcd.yaml is gone (M.where's "missing" under
--- etcd.local) means, and what puts it back.
function M.missing_sentence(names)
  return string.format("no etcd runs on %s: %s is gone, and etcd-to-systemd never ran there; " ..
    "runbooks/recover-static-pods.lua writes it again (kubeadm init phase etcd local)", table.concat(names, ", "), svc.MANIFEST)
end

--- checksum(url) → sha256 | nil, why: the tarball's line of the SHA256SUMS beside it (etcd's
--- releases publish one).
function M.checksum(url)
  local sums_url = url:gsub("[^/]+$", "SHA256SUMS")
  local want = url:match("([^/]+)$")
  local r, err, msg = http.request { url = sums_url, timeout = 30, retries = 2 }
  if not r or r.status ~= 200 then
    return nil, string.format("the release's checksums %s: %s (give sha256=... to pin it)", sums_url,
      r and ("HTTP " .. r.status) or tostring(msg or err))
  end
  for line in r.body:gmatch("[^\n]+") do
    local sum, file = line:match("^(%x+)%s+%*?(%S+)$")
    if file == want then return sum end
  end
  return nil, string.format("%s lists no checksum for %s", sums_url, want)
end

return M
