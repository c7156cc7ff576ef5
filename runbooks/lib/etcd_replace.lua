-- The pieces of runbooks/etcd-member-replace.lua: etcd's own procedure for a member whose data is
-- lost ("Replacing a failed etcd member"): a member that comes back with an empty data directory
-- under its old identity is refused by its peers ("member ... has already been bootstrapped"), and
-- must not be let in: it would vote with a log it no longer has. So: stop it, remove it, keep
-- what is left of its data aside, add it again (a new member ID), and start it with
-- --initial-cluster-state=existing, the way kubeadm's control-plane join starts a stacked member.
-- The node's etcd runs as kubeadm's static Pod (its manifest rewritten) or as etcd.service (its
-- environment file rewritten); nothing else about it changes.
local etcd = require "engine.etcd"
local http = require "engine.http"
local nodes = require "etcd_nodes"
local remote = require "std.remote"
local static_pod = require "std.static_pod"
local svc = require "std.etcd_service"
local systemd = require "std.systemd"
local time = require "engine.time"

local M = {}
local q = remote.quote

--- parked(p) → where this runbook parks the static Pod's manifest (its own name: etcd-to-systemd
--- keeps its copy of etcd.yaml in the same directory, and that one must never be started again).
function M.parked(p) return p.backup_dir .. "/etcd.yaml.replacing" end

--- how(host, p, parked) → {kind = "static" | "systemd", file, flags, order} | nil, why[, "none"]: where the node's
--- etcd is configured: etcd.service's environment file (etcd-to-systemd ran), else kubeadm's
--- manifest, or the one the runbook parked at `parked` (default M.parked(p): a run killed after the stop);
--- "none" when the node has none of them.
function M.how(h, p, parked)
  parked = parked or M.parked(p)
  local env = systemd.read(h, svc.ENV_FILE)
  local m = svc.manifest(h)
  if env and m then
    return nil, string.format("both %s and %s are there: an etcd-to-systemd migration stopped midway; finish it first",
      svc.ENV_FILE, svc.MANIFEST)
  end
  if env then return { kind = "systemd", file = svc.ENV_FILE, flags = svc.flags_of_env(env) } end
  m = m or svc.manifest(h, parked)
  if m then return { kind = "static", file = m.file, flags = m.flags, order = m.order } end
  return nil, string.format("no %s (nor one parked at %s) and no %s: put the member's configuration back first",
    svc.MANIFEST, parked, svc.ENV_FILE), "none"
end

-- The host of a URL ("https://10.0.0.3:2380" → "10.0.0.3", "https://[fd00::3]:2380" → "[fd00::3]").
local function url_host(u) return tostring(u):match("^%a[%w+.-]*://([^/]+):%d+/?$") end

-- s with every "//FROM:" made "//TO:" (plain text, not a pattern).
local function swap_host(s, from, to)
  local out, i = {}, 1
  local needle = "//" .. from .. ":"
  while true do
    local a, b = s:find(needle, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1) .. "//" .. to .. ":"
    i = b + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

-- true when s names addr whole (10.0.0.1 in "https://10.0.0.1:2379", not in "10.0.0.11").
local function names(s, addr)
  local i = 1
  while true do
    local a, b = s:find(addr, i, true)
    if not a then return false end
    if not s:sub(a - 1, a - 1):match("[%w%.%-]") and not s:sub(b + 1, b + 1):match("[%w%.%-]") then return true end
    i = a + 1
  end
end

--- from_peer(p, cps, h, member, members) → how {kind = "static", file, flags, order, text, from} |
--- nil, why: the node's etcd.yaml gone together with its data and no copy left, written from
--- p.manifest_from's, as kubeadm writes every stacked member's from the same template: the
--- peer's member name and its address in every URL made this member's (its address the one the
--- cluster knows it by), the rest (image, data directory, certificate paths, flags) kept. Refused
--- where the result would not be this member: the peer's address left anywhere in it, or a
--- certificate it names missing on the node.
function M.from_peer(p, cps, h, member, members)
  local peer
  for _, x in ipairs(cps) do if x.name == p.manifest_from then peer = x end end
  if not peer then return nil, string.format("manifest_from=%s is not in %s", p.manifest_from, p.control_plane) end
  if peer.name == h.name then return nil, "manifest_from names the node being replaced: name a peer" end
  local r = remote.must(peer, "if [ -f " .. q(svc.MANIFEST) .. " ]; then cat " .. q(svc.MANIFEST) .. "; fi",
    { read_only = true, what = "reading " .. svc.MANIFEST })
  if r.stdout == "" then
    return nil, string.format("manifest_from=%s: it has no %s (its etcd runs under systemd, or not at all)", peer.name, svc.MANIFEST)
  end
  local flags = svc.flags_of(r.stdout)
  if not flags then return nil, string.format("manifest_from=%s: its %s is not an etcd static Pod", peer.name, svc.MANIFEST) end
  local peer_member
  for _, m in ipairs(members) do if m.name == flags.name then peer_member = m end end
  if not peer_member then return nil, string.format("manifest_from=%s: its etcd is member %s, not in the member list", peer.name, flags.name) end
  local from, to = url_host(peer_member.peer_urls[1] or ""), url_host(member.peer_urls[1] or "")
  if not from or not to then return nil, "manifest_from: cannot tell the members' addresses from their peer URLs" end
  local doc = http.yaml_decode(r.stdout)
  local c = doc.spec.containers[1]
  for _, key in ipairs({ "command", "args" }) do
    for i, a in ipairs(c[key] or {}) do
      a = tostring(a)
      c[key][i] = a == "--name=" .. flags.name and ("--name=" .. member.name) or swap_host(a, from, to)
    end
  end
  local ann = type(doc.metadata) == "table" and doc.metadata.annotations
  if type(ann) == "table" then for k, v in pairs(ann) do ann[k] = swap_host(tostring(v), from, to) end end
  local text = http.yaml_encode(doc)
  -- Every flag but --initial-cluster (set anew when the member is added) carries this member's
  -- address now; one that still names the peer's is one this template does not know.
  local mine, order = svc.flags_of(text)
  for _, k in ipairs(order) do
    if k ~= "initial-cluster" and names(mine[k], from) then
      return nil, string.format("manifest_from=%s: its --%s=%s names %s in a way this runbook does not rewrite; write %s by hand",
        peer.name, k, mine[k], from, svc.MANIFEST)
    end
  end
  local files, missing = {}, {}
  for _, k in ipairs({ "trusted-ca-file", "cert-file", "key-file", "peer-trusted-ca-file", "peer-cert-file", "peer-key-file" }) do
    if mine[k] then files[#files + 1] = q(mine[k]) end
  end
  if #files > 0 then
    local t = remote.must(h, "for f in " .. table.concat(files, " ") .. "; do [ -f \"$f\" ] || printf '%s\\n' \"$f\"; done",
      { read_only = true, what = "looking for the member's certificates" })
    for f in t.stdout:gmatch("[^\n]+") do missing[#missing + 1] = f end
  end
  if #missing > 0 then
    return nil, string.format("the certificates its etcd.yaml would name are not there (%s): its etcd certificates are gone too; " ..
      "a node rebuilt so joins again (kubeadm join --control-plane)", table.concat(missing, ", "))
  end
  return { kind = "static", file = svc.MANIFEST, flags = mine, order = order, text = text, from = peer.name }
end

--- in_place(host, parked) → true | false, why: the member's manifest is at `parked` or back in the
--- kubelet's manifests (an operation that put it there holds).
function M.in_place(h, parked)
  local r = remote.must(h, "if [ -f " .. q(parked) .. " ] || [ -f " .. q(svc.MANIFEST) .. " ]; then echo there; fi",
    { read_only = true, what = "looking for " .. parked })
  return r.stdout:find("there", 1, true) ~= nil, "neither " .. parked .. " nor " .. svc.MANIFEST .. " is there"
end

--- written(p, facts, parked) → operation "etcd.yaml written from PEER's": the manifest from_peer
--- made, written where a stopped member's is parked (0600, its directory 0700), for "member
--- joined" to start as an existing member. Holds once it is parked, or back in the manifests.
function M.written(p, facts, parked)
  parked = parked or M.parked(p)
  return {
    name = "etcd.yaml written from " .. tostring(facts.how.from) .. "'s",
    holds = function(h) return M.in_place(h, parked) end,
    apply = function(h)
      if http.dry_run() then
        log.info("dry-run: would write the member's etcd.yaml from a peer's", { node = h.name, from = facts.how.from,
          name = facts.how.flags.name, peer_urls = facts.how.flags["initial-advertise-peer-urls"], to = parked })
        return
      end
      local dir = parked:match("^(.*)/[^/]+$")
      remote.must(h, "mkdir -p " .. q(dir) .. " && chmod 0700 " .. q(dir), { what = "making " .. dir })
      local ok, err, msg = h:write_file(parked, facts.how.text, { mode = "0600", sudo = true })
      if not ok then error(string.format("%s: writing %s: %s (%s)", h.name, parked, err, msg or ""), 0) end
      log.info("etcd.yaml written from a peer's", { node = h.name, from = facts.how.from, name = facts.how.flags.name,
        peer_urls = facts.how.flags["initial-advertise-peer-urls"], file = parked })
    end,
  }
end

--- precheck(p, cps, h) → facts {member = {id, name, peer_urls}, how, data_dir, others = {hosts},
--- healthy = n, members = n}, journaled: nothing changes; every problem is named together.
function M.precheck(p, cps, h)
  local problem, finish = nodes.errors()
  local facts, others = { others = {} }, {}  -- facts.others: their names (journaled)
  for _, x in ipairs(cps) do
    if x.name ~= h.name then others[#others + 1] = x; facts.others[#facts.others + 1] = x.name end
  end
  if #others == 0 then
    problem("%s is the only member: there is no quorum to join it to; restore every member from a snapshot instead (runbooks/etcd-restore.lua -e snapshot=FILE)", h.name)
    finish()
  end
  local eps = {}
  for _, x in ipairs(others) do
    local ok, ep = pcall(nodes.endpoint, x, p)
    if ok then eps[#eps + 1] = ep else problem("%s", tostring(ep)) end
  end
  local health = #eps > 0 and etcd.cluster_health(eps)
  if not health then
    problem("etcd: no other member answers: %s", #eps > 0 and "cannot ask" or "no tunnel")
    finish()
  end
  local name = nodes.member_name(h)
  local members = etcd.members(eps[1]) or {}
  facts.members = #members
  for _, m in ipairs(members) do
    if m.name == name then facts.member = { id = m.id, name = m.name, peer_urls = m.peer_urls } end
  end
  local healthy = 0
  for _, m in ipairs(health.members) do if m.healthy and m.name ~= name then healthy = healthy + 1 end end
  facts.healthy = healthy
  local quorum = #members // 2 + 1
  if healthy < quorum then
    problem("only %d of the %d members answer without %s (a quorum is %d): removing and adding a member needs one; " ..
      "bring the others back first, or restore every member from a snapshot (runbooks/etcd-restore.lua -e snapshot=FILE)", healthy, #members, name, quorum)
  end
  if not facts.member then
    local names = {}
    for _, m in ipairs(members) do names[#names + 1] = m.name ~= "" and m.name or m.id end
    problem("no etcd member is named %s (members: %s); set etcd_member_name on the host if its member has another name",
      name, table.concat(names, ", "))
  elseif #facts.member.peer_urls == 0 then
    problem("member %s has no peer URL to add it again with", name)
  end
  -- The member itself: a healthy one has its data; replacing it is asked for explicitly.
  local asked, st = pcall(nodes.member_ok, h, p)
  -- Healthy, with a leader, in a cluster of its own: it lost its data under a manifest naming
  -- itself alone (kubeadm's, at init and upgrade) and started a new one. Its data is not the
  -- cluster's: replaced without force.
  local home = asked and st and etcd.status(eps[1])
  if home and st.cluster_id ~= home.cluster_id then
    facts.forked = st.cluster_id
    log.warn(name .. "'s etcd answers as a cluster of its own: its member is replaced", { cluster = st.cluster_id,
      the_cluster = home.cluster_id })
  elseif asked and st and not p.force then
    problem("%s's member answers, healthy, with a leader: nothing to replace (-e force=true replaces it anyway: " ..
      "a member whose data you no longer trust)", name)
  end
  local how, why, none = M.how(h, p)
  if none and p.manifest_from ~= "" and facts.member then
    how, why = M.from_peer(p, cps, h, facts.member, members)
  elseif none then
    why = why .. ", or write it from a peer's: -e manifest_from=PEER"
  elseif how and p.manifest_from ~= "" then
    problem("%s: manifest_from=%s: its etcd is configured already (%s): nothing to write", h.name, p.manifest_from, how.file)
  end
  if not how then
    problem("%s: %s", h.name, why)
  else
    facts.how = how
    facts.data_dir = how.flags["data-dir"]
    if how.flags.name ~= name then problem("%s: its etcd is configured as member %s, not %s", h.name, tostring(how.flags.name), name) end
    if facts.member and how.flags["initial-advertise-peer-urls"] and
        how.flags["initial-advertise-peer-urls"] ~= table.concat(facts.member.peer_urls, ",") then
      problem("%s: its etcd advertises %s to its peers, the cluster knows member %s at %s", h.name,
        how.flags["initial-advertise-peer-urls"], name, table.concat(facts.member.peer_urls, ","))
    end
  end
  finish()
  return facts
end

--- stopped(p, facts, parked) → operation "etcd stopped": the static Pod's manifest moved to
--- `parked` (default M.parked(p); its directory 0700) and its container gone, or etcd.service stopped.
function M.stopped(p, facts, parked)
  parked = parked or M.parked(p)
  return {
    name = "etcd stopped",
    holds = function(h)
      if facts.how.kind == "systemd" then return not systemd.active(h, svc.UNIT), "etcd.service is active" end
      return svc.manifest(h) == nil and static_pod.container(h, "etcd") == nil, svc.MANIFEST .. " is there, or its container runs"
    end,
    apply = function(h)
      if facts.how.kind == "systemd" then
        remote.must(h, "systemctl stop " .. q(svc.UNIT), { what = "systemctl stop etcd" })
        return
      end
      local gone, why = static_pod.park(h, "etcd", parked, p.health_timeout)
      if not gone then error(string.format("%s: %s", h.name, tostring(why)), 0) end
    end,
  }
end

-- etcd's strict reconfiguration check refuses a member add or remove while a voting member has
-- been connected to the member asked for less than 5 s ("unhealthy cluster"), or too few have
-- started ("not enough started members"): a peer restarted or a member removed a moment ago. It
-- passes on its own; kubeadm asks again the same way.
local function transient(msg)
  msg = tostring(msg)
  return msg:find("unhealthy cluster", 1, true) ~= nil or msg:find("not enough started members", 1, true) ~= nil
end

-- fn() → result | nil, err, msg; asked again each second for up to `timeout` seconds while etcd
-- refuses it for now (transient), then its last answer.
local function asking_again(what, timeout, fn)
  local deadline = time.monotonic() + (timeout or 0)
  while true do
    local r, err, msg = fn()
    if r or not transient(msg) or time.monotonic() > deadline then return r, err, msg end
    log.info("etcd refuses the " .. what .. " for now; asking again", { error = tostring(msg) })
    sleep(1)
  end
end

--- removed(facts, endpoints, timeout) → operation "member removed" (cluster-wide, run once): the old member
--- ID gone from the member list.
function M.removed(facts, eps, timeout)
  local id = facts.member.id
  local function listed()
    for _, m in ipairs(etcd.members(eps[1]) or {}) do if m.id == id then return true end end
    return false
  end
  return {
    name = "member " .. facts.member.name .. " (" .. id .. ") removed",
    holds = function() return not listed(), "member " .. id .. " is still listed" end,
    apply = function()
      local ok, err, msg = asking_again("member remove", timeout, function() return etcd.member_remove(id, eps[1]) end)
      if not ok then error(string.format("etcd member remove %s: %s", id, tostring(msg or err)), 0) end
    end,
  }
end

--- data_aside(facts, stamp) → operation "old data kept aside": DATADIR/member renamed
--- DATADIR/member.replaced-STAMP, so the new member starts empty. Inside the data directory: a
--- rename on its own filesystem (often a disk of its own), never a copy onto the root disk; etcd
--- only warns about the extra directory.
function M.data_aside(facts, stamp)
  local dir = facts.data_dir
  local aside = M.aside(dir, stamp)
  return {
    name = "old data kept aside",
    holds = function(h)
      local r = remote.must(h, "if [ -e " .. q(dir .. "/member") .. " ]; then echo there; fi", { read_only = true,
        what = "looking at " .. dir })
      return not r.stdout:find("there", 1, true), dir .. "/member is there"
    end,
    apply = function(h)
      remote.must(h, "mv -T " .. q(dir .. "/member") .. " " .. q(aside), { what = "renaming " .. dir .. "/member " .. aside })
      if not http.dry_run() then log.info("what was left of the member's data is kept", { node = h.name, dir = aside }) end
    end,
  }
end

--- aside(data_dir, stamp) → where the old member directory is kept.
function M.aside(dir, stamp) return dir .. "/member.replaced-" .. stamp end

--- added(facts, endpoints, timeout) → {id, initial_cluster} (journaled by the caller's step): the
--- member added again with its peer URLs (asked again for up to `timeout` seconds while etcd's
--- strict reconfiguration check refuses it for now); etcd's --initial-cluster for it (every member
--- by name, the new one by its own).
function M.added(facts, eps, timeout)
  local name = facts.member.name
  for _, m in ipairs(etcd.members(eps[1]) or {}) do  -- added before a kill: not twice
    if m.name == "" and table.concat(m.peer_urls, ",") == table.concat(facts.member.peer_urls, ",") then
      return { id = m.id, initial_cluster = M.initial_cluster(etcd.members(eps[1]), name, facts.member.peer_urls) }
    end
  end
  local r, err, msg = asking_again("member add", timeout, function() return etcd.member_add(facts.member.peer_urls, eps[1]) end)
  if not r then error(string.format("etcd member add %s: %s", name, tostring(msg or err)), 0) end
  if r.dry_run then  -- what it would be: the member is still listed under its name
    return { id = "(dry run)", initial_cluster = M.initial_cluster(etcd.members(eps[1]), name, facts.member.peer_urls) }
  end
  log.info("etcd member added", { name = name, id = r.id, peer_urls = table.concat(facts.member.peer_urls, ",") })
  return { id = r.id, initial_cluster = M.initial_cluster(r.members, name, facts.member.peer_urls) }
end

--- initial_cluster(members, name, peer_urls) → "a=https://..:2380,b=...": the unnamed member
--- with these peer URLs is `name`.
function M.initial_cluster(members, name, peer_urls)
  local parts, mine = {}, table.concat(peer_urls, ",")
  for _, m in ipairs(members or {}) do
    local n = m.name ~= "" and m.name or (table.concat(m.peer_urls, ",") == mine and name) or nil
    if n then for _, u in ipairs(m.peer_urls) do parts[#parts + 1] = n .. "=" .. u end end
  end
  table.sort(parts)
  return table.concat(parts, ",")
end

-- The manifest's etcd command with these flags set (added when absent).
function M.with_flags(text, set)
  local doc = http.yaml_decode(text)
  local c = doc.spec.containers[1]
  local seen = {}
  for i, a in ipairs(c.command or {}) do
    local k = tostring(a):match("^%-%-([%w%-%.]+)=")
    if k and set[k] then c.command[i] = "--" .. k .. "=" .. set[k]; seen[k] = true end
  end
  local extra = {}
  for k in pairs(set) do if not seen[k] then extra[#extra + 1] = k end end
  table.sort(extra)
  for _, k in ipairs(extra) do c.command[#c.command + 1] = "--" .. k .. "=" .. set[k] end
  return http.yaml_encode(doc)
end

--- started(p, facts, joined) → operation "member joined": etcd started as an existing member of
--- joined.initial_cluster (the manifest back with the two flags set, or the environment file
--- rewritten and etcd.service started), then the gate: the new member ID healthy, a leader,
--- caught up, health_passes in a row.
function M.started(p, facts, joined)
  local set = { ["initial-cluster"] = joined.initial_cluster, ["initial-cluster-state"] = "existing" }
  return {
    name = "member joined",
    holds = function(h)
      local st, why = nodes.member_ok(h, p, joined.id)
      return st ~= nil, why
    end,
    apply = function(h)
      if http.dry_run() then
        log.info("dry-run: would start etcd as an existing member", { node = h.name, initial_cluster = joined.initial_cluster,
          how = facts.how.kind })
        return
      end
      if facts.how.kind == "systemd" then
        local env = systemd.read(h, svc.ENV_FILE) or ""
        local lines = {}
        for line in env:gmatch("[^\n]+") do
          if not line:match("^ETCD_INITIAL_CLUSTER=") and not line:match("^ETCD_INITIAL_CLUSTER_STATE=") then lines[#lines + 1] = line end
        end
        lines[#lines + 1] = svc.env_name("initial-cluster") .. "=" .. set["initial-cluster"]
        lines[#lines + 1] = svc.env_name("initial-cluster-state") .. "=existing"
        -- 0644, as etcd-to-systemd wrote it (systemd reads it, not etcd's user)
        local ok, err, msg = h:write_file(svc.ENV_FILE, table.concat(lines, "\n") .. "\n", { mode = "0644", sudo = true })
        if not ok then error(string.format("%s: writing %s: %s (%s)", h.name, svc.ENV_FILE, err, msg or ""), 0) end
        -- restart: a unit in its restart loop starts again now, with the new environment
        remote.must(h, "systemctl restart " .. q(svc.UNIT), { what = "systemctl restart etcd", timeout = 120 })
      else
        local parked = M.parked(p)
        local r = remote.must(h, "if [ -f " .. q(parked) .. " ]; then cat " .. q(parked) .. "; fi", { read_only = true,
          what = "reading the parked " .. parked })
        if r.stdout ~= "" then  -- else written back before a kill: the gate is what is left
          local ok, err, msg = h:write_file(svc.MANIFEST, M.with_flags(r.stdout, set), { mode = "0600", sudo = true })
          if not ok then error(string.format("%s: writing %s: %s (%s)", h.name, svc.MANIFEST, err, msg or ""), 0) end
          remote.must(h, "rm -f " .. q(parked), { what = "removing the parked " .. parked })
        end
      end
      local up, why = nodes.gate(function() return nodes.member_ok(h, p, joined.id) end, p.health_passes, p.health_interval,
        p.health_timeout)
      if not up then error(string.format("%s: the new member %s: %s (its log: %s)", h.name, joined.id, tostring(why),
        facts.how.kind == "systemd" and "journalctl -u etcd" or "crictl logs on etcd"), 0) end
      log.info("etcd member joined", { node = h.name, id = joined.id })
    end,
  }
end

return M
