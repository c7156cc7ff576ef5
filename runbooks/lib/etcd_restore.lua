-- The pieces of runbooks/etcd-restore.lua: etcd's disaster recovery ("Restoring a cluster") as
-- Kubernetes documents it for kubeadm. When a quorum is lost for good (two of three members' data
-- gone, a one-node control plane's only member) no member can be replaced: every member is made
-- again from one snapshot, as a new cluster with the same names and peer URLs. The API servers are
-- stopped first (they would serve and write what the restore replaces) and started last; the
-- controller-manager and the scheduler are restarted after, so no cache of the lost state stays.
-- Each node's old data is renamed aside inside its own data directory, never deleted.
local etcd = require "engine.etcd"
local http = require "engine.http"
local k8s = require "engine.k8s"
local manifest_restore = require "manifest_restore"
local nodes = require "etcd_nodes"
local remote = require "std.remote"
local replace = require "etcd_replace"
local static_pod = require "std.static_pod"
local svc = require "std.etcd_service"

local M = {}
local q = remote.quote

M.APISERVER = static_pod.MANIFESTS .. "/kube-apiserver.yaml"

-- Kubernetes' advice for a restore with etcdutl: revisions moved past any a watcher has seen, and
-- marked compacted, so every informer lists again instead of waiting for revisions that repeat.
M.BUMP = "--bump-revision 1000000000 --mark-compacted"

--- parked(p, component) → where the run parks a static Pod's manifest (its own name: etcd-to-systemd
--- and etcd-member-replace keep theirs in the same directory).
function M.parked(p, component) return p.backup_dir .. "/" .. component .. ".yaml.restoring" end

--- work(data_dir, stamp) → the run's directory on the node: inside the data directory (its own disk,
--- which the restored database must fit on anyway), holding the snapshot copy and the new data.
function M.work(dir, stamp) return dir .. "/restore-" .. stamp end

--- aside(data_dir, stamp) → where the node's old member directory is kept.
function M.aside(dir, stamp) return dir .. "/member.before-restore-" .. stamp end

--- kept(host, m, stamp) → the old member directory kept aside on the node, or nil (it had none).
function M.kept(h, m, stamp)
  local aside = M.aside(m.data_dir, stamp)
  local r = remote.must(h, "[ -e " .. q(aside) .. " ] && echo kept; true", { read_only = true, what = "looking for " .. aside })
  return r.stdout:find("kept", 1, true) and aside or nil
end

-- The restore tool on the node: etcdutl (etcd 3.5+; with --bump-revision when it has it), else
-- etcdctl (3.4 restores with `etcdctl snapshot restore`).
local function tool(h)
  local r = remote.must(h, "for t in etcdutl etcdctl; do p=$(command -v $t) && { echo \"$p\"; " ..
    "[ $t = etcdutl ] && $p snapshot restore --help 2>&1 | grep -q -- --bump-revision && echo bump; exit 0; }; done; true",
    { read_only = true, what = "looking for etcdutl or etcdctl" })
  local path = r.stdout:match("^(%S+)")
  return path, r.stdout:find("\nbump", 1, true) ~= nil
end

--- precheck(p, cps) → facts {snapshot = {size, sha256}, members = {name → {kind, file, member, peer,
--- data_dir, tool, bump}}, initial_cluster, healthy, total, dropped = {the old cluster's members
--- outside cps}}: reads only; every problem named together. A cluster with a
--- quorum is refused (a restore loses every write since the snapshot) unless p.force. hidden: the
--- control-plane nodes --limit hides: left out only with p.drop_members (their members may be
--- unreadable, so the member list alone would not say so).
function M.precheck(p, cps, hidden)
  local problem, finish = nodes.errors()
  local facts = { members = {}, total = #cps, healthy = 0 }
  if p.manifest ~= "" and not p.manifest:match("^/") then
    problem("manifest=%s: a path on the node, from / (where its etcd.yaml's copy is, say /etc/kubernetes/etcd.yaml)", p.manifest)
  end
  -- The snapshot first: read whole here, its trailer checked, before any node is asked anything.
  local snap, _, why = etcd.snapshot_file(p.snapshot)
  if not snap then
    problem("the snapshot: %s", tostring(why))
    finish()
  end
  facts.snapshot = snap
  local parts = {}
  for _, h in ipairs(cps) do
    local how, why, none = replace.how(h, p, M.parked(p, "etcd"))
    if none and p.manifest ~= "" then
      -- Its etcd.yaml moved out with its data lost (a one-node control plane): the copy named,
      -- put in place of the parked one and started with the restored data.
      local ok, m = pcall(svc.manifest, h, p.manifest)
      if ok and m then how = { kind = "static", file = m.file, flags = m.flags, order = m.order, copy = p.manifest }
      else why = string.format("no %s, and manifest=%s: %s", svc.MANIFEST, p.manifest, ok and "no such file" or tostring(m)) end
    elseif none then
      local found = manifest_restore.moved_copies(h, "etcd")
      why = why .. string.format(", or name its copy with -e manifest=PATH (%s)",
        #found > 0 and ("found " .. table.concat(found, ", ")) or "none found under /etc/kubernetes")
    end
    local name = nodes.member_name(h)
    if not how then
      problem("%s: %s", h.name, why)
    else
      local f = how.flags
      local m = { kind = how.kind, file = how.file, member = name, peer = f["initial-advertise-peer-urls"],
        data_dir = f["data-dir"] or nodes.DATA_DIR, copy = how.copy }
      if f.name ~= name then problem("%s: its etcd is configured as member %s, not %s", h.name, tostring(f.name), name) end
      if not m.peer or m.peer == "" then problem("%s: its etcd has no --initial-advertise-peer-urls to restore it with", h.name) end
      m.tool, m.bump = tool(h)
      if not m.tool then
        problem("%s: neither etcdutl nor etcdctl is on the node (etcd's release has both; Debian's etcd-client has etcdctl)", h.name)
      end
      for u in tostring(m.peer or ""):gmatch("[^,]+") do parts[#parts + 1] = name .. "=" .. u end
      facts.members[h.name] = m
    end
  end
  table.sort(parts)
  facts.initial_cluster = table.concat(parts, ",")
  -- What answers now, through each node's own tunnel: a member's status naming a leader (a member
  -- without one says so at once; a health check would wait for etcd's request timeout).
  local answering
  for _, h in ipairs(cps) do
    local ok, ep = pcall(nodes.endpoint, h, p)
    local st = ok and etcd.status(ep)
    if st and st.leader and st.leader ~= "0" then facts.healthy = facts.healthy + 1 end
    answering = answering or (st and ep)
  end
  -- The old cluster's members as a running one knows them (its own store: no quorum needed). One
  -- outside control_plane would not be restored: its node keeps the old data, and the restored
  -- cluster does not have it. Refused unless its node is gone for good (drop_members).
  local names, dropped = {}, {}
  for _, m in pairs(facts.members) do names[m.member] = true end
  if #hidden > 0 and not p.drop_members then
    -- Said whatever the member list says: with the visible members down it says nothing, and a
    -- restore of them alone would leave the hidden ones running the old cluster.
    problem("--limit hides %s of %s: a restore makes every member anew from the snapshot, and a member left out would go " ..
      "on with the old data. Run it without --limit, or -e drop_members=true when %s gone for good", table.concat(hidden, ", "),
      p.control_plane, #hidden == 1 and "its node is" or "their nodes are")
    for _, name in ipairs(hidden) do names[name] = true end  -- named once
  end
  for _, m in ipairs(answering and etcd.members(answering) or {}) do
    if m.name ~= "" and not names[m.name] then dropped[#dropped + 1] = m.name .. " (" .. table.concat(m.peer_urls, ",") .. ")" end
  end
  table.sort(dropped)
  facts.dropped = dropped
  if #dropped > 0 and not p.drop_members then
    problem("the old cluster also has %s, not in %s: a restore would leave %s out, with the old data. Add %s to the " ..
      "group, or -e drop_members=true when %s gone for good", table.concat(dropped, ", "), p.control_plane,
      #dropped == 1 and "it" or "them", #dropped == 1 and "its node" or "their nodes", #dropped == 1 and "it is" or "they are")
  end
  local quorum = #cps // 2 + 1
  if facts.healthy >= quorum and not p.force then
    -- A member that lost its data answers again when kubeadm's manifest names it alone (a one-node
    -- control plane; every member after an upgrade): it started a new, empty cluster. Which one
    -- this is, the cluster says: kubeadm-config, which kubeadm alone writes, is in it or not.
    local key = p.etcd_prefix:gsub("/+$", "") .. "/configmaps/kube-system/kubeadm-config"
    local _, gerr = etcd.get(key)
    problem("etcd has a quorum (%d of %d members answer with a leader): a restore would lose every write since the snapshot. %s",
      facts.healthy, #cps, gerr == "not found" and string.format("It holds no %s, so not the cluster's objects: a member " ..
        "that lost its data started a new, empty cluster (or the API servers use another --etcd-prefix: -e etcd_prefix=). " ..
        "-e force=true restores the snapshot over it", key) or
        "A member whose data is lost is replaced instead (runbooks/etcd-member-replace.lua); -e force=true restores anyway")
  end
  finish()
  return facts
end

--- copy(p, host, m, stamp, sha256) → the snapshot uploaded into the node's work directory (0600),
--- its sha256 there the one read here, and read back by the node's own tool → {revision,
--- total_key, hash, bytes}.
function M.copy(p, h, m, stamp, sha256)
  local dir = M.work(m.data_dir, stamp)
  if http.dry_run() then
    log.info("dry-run: would copy the snapshot to the node", { node = h.name, from = p.snapshot, to = dir .. "/snapshot.db" })
    return { dry_run = true }
  end
  remote.must(h, "mkdir -p -m 0700 " .. q(dir), { what = "making " .. dir })
  local up, err, msg = h:upload(p.snapshot, dir .. "/snapshot.db", { mode = "0600", sudo = true })
  if not up then error(string.format("%s: copying the snapshot %s: %s (%s)", h.name, p.snapshot, tostring(err), tostring(msg or "")), 0) end
  local sum = remote.must(h, "sha256sum " .. q(dir .. "/snapshot.db"), { read_only = true, what = "sha256sum of the copy" })
  if sum.stdout:match("^(%x+)") ~= sha256 then
    error(string.format("%s: the copy's sha256 is %s, not the snapshot's %s", h.name, tostring(sum.stdout:match("^(%x+)")), sha256), 0)
  end
  local r = remote.must(h, "ETCDCTL_API=3 " .. q(m.tool) .. " snapshot status " .. q(dir .. "/snapshot.db") .. " -w json",
    { read_only = true, what = "reading the snapshot with " .. m.tool })
  local st = http.json_decode(r.stdout:match("{.*}") or "")
  if type(st) ~= "table" or not st.revision then
    error(string.format("%s: %s cannot read the snapshot: %s", h.name, m.tool, r.stdout), 0)
  end
  return { revision = st.revision, total_key = st.totalKey, hash = st.hash, bytes = up.bytes }
end

--- copied(p, m) → operation "etcd.yaml copied from COPY": a member whose etcd.yaml is gone, its
--- copy m.copy (the manifest param) installed where the run parks a running member's (0600, the
--- directory 0700), so "etcd started" puts it in place; the copy itself stays. Holds once the
--- parked one, or the manifest, is there.
function M.copied(p, m)
  local parked = M.parked(p, "etcd")
  local dir = parked:match("^(.*)/[^/]+$")
  return {
    name = "etcd.yaml copied from " .. m.copy,
    holds = function(h) return replace.in_place(h, parked) end,
    apply = function(h)
      remote.must(h, "mkdir -p " .. q(dir) .. " && chmod 0700 " .. q(dir) .. " && install -m 0600 " .. q(m.copy) .. " " .. q(parked),
        { what = "copying " .. m.copy .. " to " .. parked })
    end,
  }
end

--- apiserver_stopped(p) → operation "API server stopped": kube-apiserver.yaml parked and its
--- container gone (a node without one holds already).
function M.apiserver_stopped(p)
  local parked = M.parked(p, "kube-apiserver")
  return {
    name = "API server stopped",
    holds = function(h)
      local r = remote.must(h, "[ -f " .. q(M.APISERVER) .. " ] && echo there; true", { read_only = true, what = "looking at " .. M.APISERVER })
      if r.stdout:find("there", 1, true) then return false, M.APISERVER .. " is there" end
      return static_pod.container(h, "kube-apiserver") == nil, "its kube-apiserver container still runs"
    end,
    apply = function(h)
      local gone, why = static_pod.park(h, "kube-apiserver", parked, p.health_timeout)
      if not gone then error(string.format("%s: %s", h.name, tostring(why)), 0) end
    end,
  }
end

--- restored(p, facts, m, stamp, bump) → operation "data restored": the snapshot restored into the
--- work directory as member m.member of facts.initial_cluster, the old member directory renamed
--- aside, the new one moved in (owned as the data directory is: etcd's user under systemd). One
--- command, safe to run again after a kill at any point (a marker file says it finished).
function M.restored(p, facts, m, stamp, token)
  local dir, work = m.data_dir, M.work(m.data_dir, stamp)
  local aside = M.aside(dir, stamp)
  local cmd = "ETCDCTL_API=3 " .. q(m.tool) .. " snapshot restore " .. q(work .. "/snapshot.db") .. " --name " .. q(m.member) ..
    " --initial-cluster " .. q(facts.initial_cluster) .. " --initial-cluster-token " .. q(token) ..
    " --initial-advertise-peer-urls " .. q(m.peer) .. " --data-dir " .. q(work .. "/data") .. (m.bump and (" " .. M.BUMP) or "")
  return {
    name = "data restored",
    holds = function(h)
      local r = remote.must(h, "[ -f " .. q(work .. "/restored") .. " ] && echo done; true", { read_only = true, what = "looking at " .. work })
      return r.stdout:find("done", 1, true) ~= nil, "not restored yet"
    end,
    apply = function(h)
      if http.dry_run() then
        log.info("dry-run: would restore the snapshot", { node = h.name, command = cmd, old_data = aside })
        return
      end
      -- A member directory there while the old one is already aside is this run's own, moved in
      -- before a kill: made again from the snapshot.
      local r = remote.must(h, table.concat({
        "set -e",
        -- etcd's database is flock()ed while an etcd runs on it: never restored under a live member.
        "db=" .. q(dir .. "/member/snap/db"),
        "if [ -f \"$db\" ] && ! flock --nonblock --exclusive \"$db\" true; then echo \"an etcd process still holds $db\" >&2; exit 3; fi",
        "rm -rf " .. q(work .. "/data"),
        cmd,
        "if [ -e " .. q(dir .. "/member") .. " ] && [ ! -e " .. q(aside) .. " ]; then mv -T " .. q(dir .. "/member") .. " " .. q(aside) ..
          "; elif [ -e " .. q(aside) .. " ]; then rm -rf " .. q(dir .. "/member") .. "; fi",
        "if [ -e " .. q(aside) .. " ]; then echo aside; fi",
        "mv -T " .. q(work .. "/data/member") .. " " .. q(dir .. "/member"),
        "chown -R --reference=" .. q(dir) .. " " .. q(dir .. "/member"),
        "rm -rf " .. q(work .. "/data") .. " " .. q(work .. "/snapshot.db"),
        "touch " .. q(work .. "/restored"),
      }, "\n"), { what = m.tool .. " snapshot restore", timeout = 1800 })
      log.info("etcd data restored from the snapshot", { node = h.name, member = m.member,
        old_data = r.stdout:find("aside", 1, true) and aside or "none (the member had no data)" })
    end,
  }
end

--- started(p, m) → operation "etcd started": the parked manifest moved back unchanged (the restored
--- data directory makes etcd ignore its --initial-cluster flags), or etcd.service started; then
--- the member gate (healthy, a leader, caught up). Every member starts at once: none has a
--- quorum alone.
function M.started(p, m)
  local parked = M.parked(p, "etcd")
  return {
    name = "etcd started",
    holds = function(h)
      local st, why = nodes.member_ok(h, p)
      return st ~= nil, why
    end,
    apply = function(h)
      if m.kind == "systemd" then
        remote.must(h, "systemctl restart " .. q(svc.UNIT), { what = "systemctl restart etcd", timeout = 120 })
      else
        remote.must(h, "if [ -f " .. q(parked) .. " ]; then mv -f " .. q(parked) .. " " .. q(svc.MANIFEST) .. "; fi",
          { what = "moving " .. parked .. " back to " .. svc.MANIFEST })
      end
      if http.dry_run() then return end
      local up, why = nodes.gate(function() return nodes.member_ok(h, p) end, p.health_passes, p.health_interval, p.health_timeout)
      if not up then
        error(string.format("%s: the restored member: %s (its log: %s)", h.name, tostring(why),
          m.kind == "systemd" and "journalctl -u etcd" or "/var/log/pods or crictl logs on etcd"), 0)
      end
    end,
  }
end

--- apiserver_started(p) → operation "API server started": the parked manifest back, and the API
--- answering a read (etcd gives it the objects again): through this run's kubeconfig, else through
--- the node's own API server, the way the rest of the run then goes (seed 002: the controller's
--- route cut; no route could be chosen at the start, when no API server answered).
function M.apiserver_started(p)
  local parked = M.parked(p, "kube-apiserver")
  local function answers(h)
    local ns, err, msg = k8s.get("namespaces", "kube-system")
    if not ns and nodes.api({ h }) then ns, err, msg = k8s.get("namespaces", "kube-system") end
    return ns ~= nil, "the API: " .. tostring(msg or err)
  end
  return {
    name = "API server started",
    holds = function(h)
      local r = remote.must(h, "[ -f " .. q(parked) .. " ] && echo parked; true", { read_only = true, what = "looking at " .. parked })
      if r.stdout:find("parked", 1, true) then return false, M.APISERVER .. " is parked at " .. parked end
      return answers(h)
    end,
    apply = function(h)
      remote.must(h, "if [ -f " .. q(parked) .. " ]; then mv -f " .. q(parked) .. " " .. q(M.APISERVER) .. "; fi",
        { what = "moving " .. parked .. " back to " .. M.APISERVER })
      if http.dry_run() then return end
      local up, why = nodes.gate(function() return answers(h) end, 1, 1, p.health_timeout)
      if not up then error(string.format("%s: the API server back: %s", h.name, tostring(why)), 0) end
    end,
  }
end

return M
