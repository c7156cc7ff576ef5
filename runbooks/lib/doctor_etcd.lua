-- doctor's etcd checks, each read only: a member down under systemd (unit), what brings back
-- a member whose data is lost (after_loss, lost_data), members that forked into a cluster of their
-- own, and the cluster itself (health, alarms, quota, fragmentation, kubeadm-config in it). A
-- finding is doctor_finding's.
local etcd = require "engine.etcd"
local etcd_nodes = require "etcd_nodes"
local facts = require "std.facts"
local findings = require "doctor_finding"
local manifest_flags = require "etcd_manifest_flags"
local remote = require "std.remote"
local svc = require "std.etcd_service"
local systemd = require "std.systemd"

local finding, section = findings.add, findings.section

local M = {}

--- unit(host, out, members): a control-plane node where etcd runs neither as a static Pod nor as an
--- active etcd.service, though the unit is installed (etcd-to-systemd.lua moved it there): the
--- member is down on this node, and the cluster check alone would say only that it does not answer.
--- Its state and the journal's last lines are the finding's evidence. members: how many
--- control-plane nodes there are (the only member's lost data is restored, not replaced).
function M.unit(h, out, members)
  local q = remote.quote
  local r = remote.must(h, "systemctl is-enabled " .. q(svc.UNIT) .. " 2>/dev/null || true; echo '## active'; systemctl is-active " ..
    q(svc.UNIT) .. " || true; echo '## journal'; journalctl -u " .. q(svc.UNIT) .. " --no-pager -n 3 2>/dev/null | tail -n 3; " ..
    -- A member whose data is lost says so once per start, above its stack trace.
    "echo '## lost'; journalctl -u " .. q(svc.UNIT) .. " --no-pager -n 300 2>/dev/null | grep -m1 -o " ..
    "-e 'tocommit([0-9]*) is out of range.*lost?' -e 'member [0-9a-f]* has already been bootstrapped' || true",
    { read_only = true, what = "systemctl is-enabled etcd and its journal" })
  local enabled = r.stdout:match("^(%S+)")
  if enabled ~= "enabled" and enabled ~= "disabled" then return end  -- no etcd.service here: external etcd, or none
  local state = section(r.stdout, "active"):match("%S+") or "unknown"
  local lines, last = {}, nil
  for line in section(r.stdout, "journal"):gmatch("[^\n]+") do  -- a restart loop repeats one line
    if line ~= last then lines[#lines + 1] = line end
    last = line
  end
  local journal = table.concat(lines, "\n")
  finding(out, "etcd-down", "critical", h.name, string.format("etcd.service is %s (%s), and no etcd static Pod runs here%s",
    state, enabled, journal ~= "" and ("; its journal ends: " .. journal:gsub("\n", " | ")) or ""),
    "systemctl status etcd; journalctl -u etcd -n 50", nil)
  local lost = section(r.stdout, "lost"):match("[^\n]+")
  lost = lost and ("its journal says its data is lost: " .. lost)
  if not lost then
    -- The only member says nothing of the kind: as an existing member with no data it asks its
    -- peers for the cluster, and there are none ("cannot fetch cluster info from peer urls").
    local dir = svc.flags_of_env(systemd.read(h, svc.ENV_FILE) or "")["data-dir"] or etcd_nodes.DATA_DIR
    if not etcd_nodes.has_data(h, dir) then lost = "its data is lost: " .. dir .. "/member holds no member's data (no WAL)" end
  end
  if lost then  -- the same finding's row: what the journal or its data directory says, and the runbook
    local only = members == 1
    finding(out, "etcd-down", "critical", h.name, lost ..
      (only and " (the only member: nothing can replace it; restore it from a snapshot)" or ""),
      "systemctl status etcd; journalctl -u etcd -n 50",
      only and "runbooks/etcd-restore.lua -e snapshot=FILE" or ("runbooks/etcd-member-replace.lua -e node=" .. h.name))
  end
end

--- after_loss(cp, name, etcd_healthy, hidden) → what brings back name's member, whose data is lost,
--- and the sentence that says why: "replace" (the others hold a quorum: member remove, member add),
--- "restore" (fewer than a quorum of the others kept their data: every member from a snapshot),
--- "wait" (enough of them kept their data, but too few are healthy: they come back first, a
--- restore would lose what they hold), "unknown" (--limit hides members). etcd_healthy:
--- cluster()'s count (the member that lost its data is not among them), nil when no member
--- answered; "kept their data": the other nodes whose etcd runs and holds a WAL.
function M.after_loss(cp, name, etcd_healthy, hidden)
  if #(hidden or {}) > 0 then
    return "unknown", string.format("--limit hides %s, so whether the other members hold a quorum (the member " ..
      "replaced) or not (every member restored from a snapshot) is not known here: run doctor without --limit",
      table.concat(hidden, ", "))
  end
  local total, kept = 0, {}
  for other, o in pairs(cp) do
    total = total + 1
    if other ~= name and etcd_nodes.runs(o.etcd) and not o.etcd_lost and o.etcd_data ~= false then kept[#kept + 1] = other end
  end
  table.sort(kept)
  local quorum, others = total // 2 + 1, total - 1
  if total == 1 then return "restore", "it is the only member, so nothing can replace it" end
  if (etcd_healthy or #kept) >= quorum then
    return "replace", etcd_healthy and string.format("%d of the other %d members are healthy, a quorum", etcd_healthy, others)
      or string.format("%d of the other %d members run with their data (%s), a quorum", #kept, others, table.concat(kept, ", "))
  end
  if #kept < quorum then
    return "restore", string.format("%s of the other %d members %s with %s data%s, fewer than a quorum of %d, so nothing " ..
      "can replace it", #kept == 0 and "none" or tostring(#kept), others, #kept == 1 and "runs" or "run",
      #kept == 1 and "its" or "their", #kept > 0 and (" (" .. table.concat(kept, ", ") .. ")") or "", quorum)
  end
  return "wait", string.format("%d of the other %d members run with their data (%s) but only %d %s healthy, fewer than a " ..
    "quorum of %d: bring them back first (etcdctl endpoint health --cluster, their logs; a restore would lose what they " ..
    "hold), then replace it", #kept, others, table.concat(kept, ", "), etcd_healthy, etcd_healthy == 1 and "is" or "are", quorum)
end

--- lost_data(cp, out, etcd_healthy, hidden): a static Pod's member whose data is gone while its
--- manifest stays. The kubelet starts it again and again, and each start exits at once ("member ...
--- has already been bootstrapped": it asks its peers to start a cluster they already have).
function M.lost_data(cp, out, etcd_healthy, hidden)
  local names = {}
  for name, c in pairs(cp) do if c.etcd_lost then names[#names + 1] = name end end
  table.sort(names)
  for _, name in ipairs(names) do
    local verdict, said = M.after_loss(cp, name, etcd_healthy, hidden)
    local fix = (verdict == "replace" or verdict == "wait") and ("runbooks/etcd-member-replace.lua -e node=" .. name)
      or verdict == "restore" and "runbooks/etcd-restore.lua -e snapshot=FILE" or nil
    if verdict == "replace" then said = said .. ": replace it (member remove, member add, its etcd started empty to join them)"
    elseif verdict == "restore" then said = said .. ": restore every member from a snapshot" end
    finding(out, "etcd-data-lost", "critical", name, string.format("%s/etcd.yaml starts a member whose data is gone (no WAL " ..
      "in %s/member/wal): it exits at each start (\"has already been bootstrapped\"); %s", facts.MANIFESTS, cp[name].etcd_lost, said),
      "ls " .. cp[name].etcd_lost .. "/member/wal; crictl ps -a --name etcd; crictl logs $(crictl ps -a --name etcd -q | head -1)", fix)
  end
end

-- forks(nodes, out) → nodes, without those whose etcd answers as a cluster of its own. Each node's
-- member is asked which cluster it is in (its status's cluster ID, and that cluster's member
-- list). A member that lost its data under a manifest whose --initial-cluster names itself alone
-- (kubeadm writes every member's so at init and at every upgrade; kubespray#13261) starts a new,
-- empty cluster, healthy, with a leader: examined through that node, etcd would look whole and
-- empty, and the answer would be a forced restore over the others' good data. The cluster with
-- the most members is the cluster; each node of another is an etcd-forked finding.
local function forks(nodes, out)
  if #nodes < 2 then return nodes end
  local by, order = {}, {}
  for _, h in ipairs(nodes) do
    local tun = etcd.via_node(h, { address = h.vars.etcd_access_address })
    if tun then
      local ep = etcd.endpoints()[1]
      local st = etcd.status(ep)
      local ms = st and st.cluster_id and etcd.members(ep)
      if ms then
        if not by[st.cluster_id] then
          by[st.cluster_id] = { id = st.cluster_id, members = ms, nodes = {} }
          order[#order + 1] = by[st.cluster_id]
        end
        table.insert(by[st.cluster_id].nodes, h.name)
      end
      tun:close()
    end
  end
  if #order < 2 then return nodes end
  table.sort(order, function(a, b)
    if #a.members ~= #b.members then return #a.members > #b.members end
    return a.id < b.id
  end)
  local main, gone = order[1], {}
  local function names(ms)
    local l = {}
    for _, m in ipairs(ms) do l[#l + 1] = m.name ~= "" and m.name or m.id end
    return table.concat(l, ", ")
  end
  for i = 2, #order do
    for _, name in ipairs(order[i].nodes) do
      gone[name] = true
      finding(out, "etcd-forked", "critical", name, string.format("its etcd answers as a cluster of its own (cluster %s: %s), " ..
        "not the one %s answer%s for (cluster %s: %d members, %s): its data was lost and its manifest (--initial-cluster " ..
        "naming itself alone, as kubeadm writes it at init and at every upgrade) started a new, empty cluster. The node's " ..
        "API server reads and writes that one", order[i].id, names(order[i].members), table.concat(main.nodes, ", "),
        #main.nodes == 1 and "s" or "", main.id, #main.members, names(main.members)),
        "etcdctl endpoint status -w table on " .. name .. " and on " .. main.nodes[1] .. " (two cluster IDs); etcdctl member list",
        "runbooks/etcd-member-replace.lua -e node=" .. name)
    end
  end
  local kept = {}
  for _, h in ipairs(nodes) do if not gone[h.name] then kept[#kept + 1] = h end end
  return kept
end

--- fork_risk(cp, out, members): a static Pod member, its data there, whose etcd.yaml would found a
--- new, empty cluster if its data were lost (--initial-cluster naming it alone, state new: kubeadm's
--- init and upgrades). A warning while nothing is lost; a node already found forked or without its
--- data has its critical finding instead. members: the control-plane nodes, hidden ones included.
function M.fork_risk(cp, out, members)
  local told = {}
  for _, f in ipairs(out) do
    if f.node and (f.name == "etcd-forked" or f.name == "etcd-data-lost") then told[f.node] = true end
  end
  local names = {}
  for name in pairs(cp) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local c = cp[name]
    local why = c.etcd == "static" and not c.etcd_lost and not told[name] and manifest_flags.fork_risk(c.etcd_flags, members)
    if why then
      finding(out, "etcd-fork-risk", "warning", name, facts.MANIFESTS .. "/etcd.yaml: " .. why,
        "grep initial-cluster " .. facts.MANIFESTS .. "/etcd.yaml",
        "runbooks/etcd-maintenance.lua -e mode=manifests (one restart a member; again after each kubeadm upgrade)")
    end
  end
end

--- cluster(p, nodes, out, quotas) → healthy members (nil when etcd cannot be reached), the node
--- etcd was examined through: health, leader, alarms (NOSPACE), each member's database against its
--- quota (p.etcd_quota_bytes, else quotas[member name], its own flag, else etcd's 2 GiB) and its
--- fragmentation, through the SSH of the first of nodes (the leader first) whose tunnel reaches a
--- member: a leader node that is down, or whose member is, does not hide the others' quorum.
function M.cluster(p, nodes, out, quotas)
  local t, health, via
  local unreachable, unanswered = {}, {}
  nodes = forks(nodes, out)
  for _, h in ipairs(nodes) do
    local tun, err, msg = etcd.via_node(h, { address = h.vars.etcd_access_address })
    if not tun then
      unreachable[#unreachable + 1] = (#nodes > 1 and h.name .. ": " or "") .. tostring(msg or err)
    else
      local herr, hmsg
      health, herr, hmsg = etcd.cluster_health()
      if health then
        t, via = tun, h
        break
      end
      tun:close()
      unanswered[#unanswered + 1] = { h.name, tostring(hmsg or herr) }
    end
  end
  if #unanswered == 0 and not health then
    finding(out, "etcd", "critical", #nodes == 1 and nodes[1].name or nil, "cannot reach etcd through "
      .. (#nodes == 1 and "the node: " or "any control-plane node: ") .. table.concat(unreachable, "; "),
      "etcdctl endpoint health --cluster")
    return
  end
  local healthy = 0
  if not health then
    local through = {}
    for _, u in ipairs(unanswered) do through[#through + 1] = string.format("%s's SSH tunnel: %s", u[1], u[2]) end
    finding(out, "etcd-unhealthy", "critical", nil, "no member answers through " .. table.concat(through, "; nor through ")
      .. (#unreachable > 0 and "; and no SSH tunnel opens to " .. table.concat(unreachable, "; ") or ""),
      "etcdctl endpoint health --cluster")
    return 0
  else
    if via ~= nodes[1] then log.info("etcd examined through " .. via.name, { unreachable = table.concat(unreachable, "; ") }) end
    -- Fewer than a quorum healthy: no member can be replaced (member remove and add need one). The
    -- stopped ones started again, or, their data lost, every member restored from a snapshot.
    healthy = 0
    for _, m in ipairs(health.members) do if m.healthy then healthy = healthy + 1 end end
    local quorum = #health.members // 2 + 1
    if #health.members > 0 and healthy < quorum then
      finding(out, "etcd-quorum-lost", "critical", nil, string.format("%d of %d members healthy, a quorum is %d: etcd serves " ..
        "nothing, the API servers neither", healthy, #health.members, quorum), "etcdctl endpoint status --cluster -w table; the members' logs",
        "start the stopped members; if their data is lost (\"has already been bootstrapped\", \"raft log corrupted, truncated, " ..
        "or lost\"), restore every member from a snapshot: runbooks/etcd-restore.lua -e snapshot=PATH")
    end
    for _, problem in ipairs(health.problems) do
      problem = problem:gsub("%s*\n%s*", " "):gsub(" %)", ")")
      local alarm = problem:match("^alarm (%S+)")
      if alarm == "NOSPACE" then problem = problem .. ": its database reached its quota; etcd refuses every write, the API server's too" end
      local member = not alarm and problem:match("^(%S+) unhealthy")
      finding(out, alarm and "etcd-alarm" or "etcd-unhealthy", "critical", nil, problem,
        alarm and "etcdctl alarm list" or "etcdctl endpoint health --cluster; the member's log",
        alarm == "NOSPACE" and "runbooks/etcd-maintenance.lua -e mode=defrag -e compact=true (compact, defragment, then disarm)"
          or member and healthy >= quorum and string.format("its log saying \"has already been bootstrapped\" or \"raft log " ..
            "corrupted, truncated, or lost\" (its data is lost): runbooks/etcd-member-replace.lua -e node=%s", member) or nil)
    end
    -- A cluster that answers but holds no kubeadm-config, which kubeadm alone writes: etcd's data
    -- is not the cluster's. A one-member etcd that lost its data starts a new, empty cluster
    -- (kubeadm's --initial-cluster-state=new with itself alone), and the API servers fill it again
    -- with what they make themselves (namespaces, RBAC) and the kubelets with their Nodes: the API
    -- looks alive while every object anyone created is gone.
    if #health.members > 0 and healthy >= quorum then
      local prefix = p.etcd_prefix:gsub("/+$", "")  -- as the API server joins it: "/registry/" is "/registry"
      local key = prefix .. "/configmaps/kube-system/kubeadm-config"
      local _, gerr = etcd.get(key)
      if gerr == "not found" then
        finding(out, "etcd-empty", "critical", nil, string.format("etcd answers but holds no %s: the cluster's objects are " ..
          "not in it (a member that lost its data and started a new, empty cluster; or the API servers use another " ..
          "--etcd-prefix than %s: -e etcd_prefix=)", key, prefix),
          "etcdctl get --prefix --keys-only " .. prefix .. "/configmaps/kube-system/",
          "restore from a snapshot taken before the loss: runbooks/etcd-restore.lua -e snapshot=FILE -e force=true")
      end
    end
    for _, m in ipairs(health.members) do
      local st = m.healthy and m.endpoint and etcd.status(m.endpoint)
      if st and st.db_size > 0 then
        local quota = p.etcd_quota_bytes or (quotas or {})[m.name] or (2 << 30)
        if st.db_size >= quota * p.etcd_quota_warn / 100 then
          finding(out, "etcd-db-size", "warning", m.name, string.format("database %d MiB, %d%% of the %d MiB quota",
            st.db_size >> 20, st.db_size * 100 // quota, quota >> 20), "etcdctl endpoint status -w table",
            "runbooks/etcd-maintenance.lua")
        end
        local free = (st.db_size - st.db_size_in_use) * 100 // st.db_size
        if st.db_size >= p.etcd_defrag_min_mb * 1024 * 1024 and free >= p.etcd_defrag_free then
          finding(out, "etcd-fragmented", "warning", m.name, string.format("database %d MiB, %d%% of it free space",
            st.db_size >> 20, free), "etcdctl endpoint status -w table", "runbooks/etcd-maintenance.lua")
        end
      end
    end
  end
  t:close()
  return healthy, via.name
end

return M
