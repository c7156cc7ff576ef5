-- The phases of etcd-upgrade.lua (seed 003, decision 6 and IR-4): the precheck that changes
-- nothing (members under systemd, quorum, the version step allowed for etcd and for the cluster's
-- Kubernetes), and one member's upgrade: the new binaries installed beside the kept old ones,
-- a restart, the gate (the same member, healthy, caught up, at the new version); on failure the
-- old binaries back, a restart, the gate again, and the run stops.
local etcd = require "engine.etcd"
local k8s = require "engine.k8s"
local http = require "engine.http"
local remote = require "std.remote"
local svc = require "std.etcd_service"
local systemd = require "std.systemd"
local nodes = require "etcd_nodes"

local M = {}

local q = remote.quote

--- precheck(p, cps) → facts, journaled.
function M.precheck(p, cps)
  local problem, finish = nodes.errors()
  local facts = { members = {}, versions = {}, unhealthy = {}, target = p.version }
  local eps = nodes.endpoints(cps)
  local health, herr, hmsg = etcd.cluster_health(eps)
  if not health then
    problem("etcd: %s", tostring(hmsg or herr))
  else
    local healthy = 0
    for _, m in ipairs(health.members) do
      facts.members[m.name] = m.id
      if m.healthy then healthy = healthy + 1 else facts.unhealthy[#facts.unhealthy + 1] = m.name end
      if m.leader then facts.leader = m.name end
    end
    -- An unhealthy member is upgraded first; the others must hold quorum meanwhile.
    if healthy <= #health.members // 2 then
      problem("etcd: only %d of %d members are healthy: no quorum to upgrade with (%s)", healthy, #health.members,
        table.concat(health.problems, "; "))
    end
    for _, pr in ipairs(health.problems) do
      if pr:find("alarm", 1, true) or pr:find("leader", 1, true) then problem("etcd: %s", nodes.said({ problems = { pr } })) end
    end
  end
  local ok, _, mmsg = etcd.members_match(cps)
  if not ok then problem("etcd members and inventory hosts differ: %s", tostring(mmsg)) end
  local running = {}
  for _, h in ipairs(cps) do
    local active, why = systemd.active(h, svc.UNIT)
    if not active then
      local stacked = svc.manifest(h)
      problem("%s: %s%s", h.name, why, stacked and
        " and etcd runs as kubeadm's static Pod: kubeadm upgrades that one; move it with etcd-to-systemd.lua first" or "")
    end
    local env = systemd.read(h, svc.ENV_FILE)
    for _, line in ipairs(svc.removed_settings(env, p.version)) do
      problem("%s: %s has %s: etcd %s will not start with it", h.name, svc.ENV_FILE, line, p.version)
    end
    local st = etcd.status(nodes.endpoint(h))
    local v = st and st.version or svc.version(h)
    facts.versions[h.name] = v
    if v then running[#running + 1] = v end
  end
  local kube = k8s.server_version()
  facts.kubernetes = kube and kube.git_version
  for _, pr in ipairs(svc.upgrade_problems(running, p.version, facts.kubernetes)) do problem("%s", pr) end
  nodes.release(p, p.version, facts, problem)
  finish()
  return facts
end

--- order(cps, facts) → the unhealthy members first, then by name, the leader last.
function M.order(cps, facts)
  local rank = {}
  for _, n in ipairs(facts.unhealthy) do rank[n] = 0 end
  local out = {}
  for _, h in ipairs(cps) do out[#out + 1] = h end
  local function key(h)
    local name = nodes.member_name(h)
    return rank[name] or (name == facts.leader and 2 or 1)
  end
  table.sort(out, function(a, b)
    if key(a) ~= key(b) then return key(a) < key(b) end
    return a.name < b.name
  end)
  return out
end

--- staged(p, facts) → operation "etcd VERSION fetched": the release's tarball checked and
--- unpacked on the node (downloaded only when missing), nothing installed.
function M.staged(p, facts)
  return {
    name = "etcd " .. p.version .. " fetched",
    apply = function(h) svc.stage(h, p.version, { url = p.download_url, sha256 = facts.sha256 }) end,
  }
end

local function at_target(h, p, id)
  local st, why = nodes.member_ok(h, p, id)
  if not st then return nil, why end
  if st.version ~= p.version then return nil, "the member runs " .. tostring(st.version) .. ", not " .. p.version end
  return st
end

--- upgraded(p, facts) → operation "etcd at VERSION": the member runs the version, healthy.
function M.upgraded(p, facts)
  return {
    name = "etcd at " .. p.version,
    holds = function(h)
      local have = svc.version(h)
      if have ~= p.version then return false, svc.BIN .. "/etcd is " .. tostring(have) end
      local st, why = at_target(h, p, facts.members[nodes.member_name(h)])
      return st ~= nil, why
    end,
    apply = function(h)
      local id = facts.members[nodes.member_name(h)]
      local old = svc.version(h)
      local staged = svc.CACHE .. "/etcd-v" .. p.version .. "-linux-amd64"
      local kept = svc.CACHE .. "/previous"
      if http.dry_run() then
        log.info("dry-run: would keep " .. svc.BIN .. "/etcd (" .. tostring(old) .. ") in " .. kept .. ", install " .. p.version ..
          " from " .. staged .. ", restart etcd.service and wait for member " .. tostring(id) .. " at " .. p.version, { node = h.name })
        return
      end
      if old ~= p.version then svc.keep(h, svc.BIN, kept) end
      svc.install(h, staged, svc.BIN)
      local r = h:exec("systemctl restart " .. q(svc.UNIT), { sudo = true, timeout = 300 })
      local failed
      if not r or r.code ~= 0 then
        local journal = h:exec("journalctl -u etcd --no-pager -n 3 | tail -n 3", { sudo = true, read_only = true })
        failed = string.format("etcd %s did not start: systemctl restart etcd %s%s", p.version,
          r and ("exited " .. r.code .. ": " .. r.stderr:gsub("%s+$", "")) or "got no answer",
          journal and journal.stdout ~= "" and ("\n    journal: " .. journal.stdout:gsub("%s+$", ""):gsub("\n", "\n    ")) or "")
      end
      if not failed then
        local up, why = nodes.gate(function() return at_target(h, p, id) end, p.health_passes, p.health_interval, p.health_timeout)
        if not up then failed = string.format("etcd %s is not healthy after %gs: %s", p.version, p.health_timeout, why) end
      end
      if not failed then
        log.info("etcd upgraded", { node = h.name, from = old, to = p.version, member = id })
        return
      end
      log.error("etcd upgrade failed; the old binaries go back", { node = h.name, why = failed })
      local back = pcall(svc.install, h, kept, svc.BIN) and h:exec("systemctl restart " .. q(svc.UNIT), { sudo = true, timeout = 300 })
      local again, awhy = nil, "the old binaries could not be put back"
      if back and back.code == 0 then
        again, awhy = nodes.gate(function() return nodes.member_ok(h, p, id) end, p.health_passes, p.health_interval, p.health_timeout)
      end
      if not again then
        error(string.format("%s: %s\nROLLBACK FAILED: %s; the old binaries are in %s", h.name, failed, tostring(awhy), kept), 0)
      end
      error(string.format("%s: %s\nRolled back: %s runs %s again and member %s (%s) is healthy; the members before it stay at %s, " ..
        "none after it was touched. Fix the cause, then `engine resume` this run.", h.name, failed, h.name, tostring(old),
        nodes.member_name(h), tostring(id), p.version), 0)
    end,
  }
end

return M
