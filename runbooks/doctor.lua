-- The cluster doctor: one read-only report of everything the seeds got wrong, on every node and in
-- the cluster: version skew (seed 000), stray or stale static-pod manifests (seed 000), the
-- control plane's RBAC (seed 000), disk and inodes (seed 002), certificates (seed 001), etcd's
-- health, alarms, size and fragmentation, and a migration to systemd stopped midway (seed 003),
-- node conditions, PDBs that would block a drain, firing alerts, an upgrade left in flight (seed
-- 004). Each finding names its node, the evidence, the command to see it, and the runbook that
-- answers it. Exit 0 healthy, 1 otherwise; report.json holds every finding. Nothing is changed:
-- every command is a read.
local checks = require "doctor_checks"
local doctor_etcd = require "doctor_etcd"
local etcd_nodes = require "etcd_nodes"
local fleet = require "engine.fleet"
local groups = require "std.groups"
local manifest_restore = require "manifest_restore"

return runbook {
  name = "doctor",
  summary = "Read-only diagnosis of a kubeadm cluster: every finding with its node, evidence, command and runbook",
  read_only = true,
  params = {
    control_plane = { type = "string", default = "k8s-cp", help = "inventory group (or pattern) of the control-plane nodes" },
    nodes = { type = "string", default = "all", help = "inventory pattern of the nodes to examine" },
    prometheus = { type = "string", help = "Prometheus URL for the alerts (default: the hosts' prometheus_url var; none: not checked)" },
    pushgateway = { type = "string", help = "Pushgateway URL for the upgrade gauges (default: the hosts' pushgateway_url var)" },
    pushgateway_job = { type = "string", default = "k8s_upgrade", help = "job label of k8s-upgrade.lua's gauges" },
    ignore_alerts = { type = "list", default = { "Watchdog", "InfoInhibitor" }, help = "alerts that are not findings" },
    disk_warn = { type = "integer", min = 0, max = 100, default = 80, help = "percent of a filesystem's space or inodes used: a warning" },
    disk_critical = { type = "integer", min = 0, max = 100, default = 90, help = "percent used: critical (seed 002's node stopped at 100%)" },
    cert_days = { type = "integer", min = 0, default = 30, help = "a certificate with fewer days left is a finding (under 7: critical)" },
    ca_days = { type = "integer", min = 0, default = 365, help = "a CA with fewer days left is a finding" },
    etcd_quota_bytes = { type = "integer", min = 1,
      help = "etcd's --quota-backend-bytes for every member (default: each member's own flag, etcd's 2 GiB without one)" },
    etcd_quota_warn = { type = "integer", min = 0, max = 100, default = 70, help = "percent of the quota a member's database may use" },
    etcd_defrag_free = { type = "integer", min = 0, max = 100, default = 50, help = "percent of free space in a member's database: fragmented" },
    etcd_defrag_min_mb = { type = "integer", min = 0, default = 100, help = "databases smaller than this are never called fragmented" },
    etcd_prefix = { type = "string", default = "/registry", pattern = "^/",
      help = "the API servers' --etcd-prefix: where the cluster's objects are kept in etcd" },
  },
  ---@param p params.doctor
  ---@param inv engine.Inventory
  run = function(p, inv)
    local cps = inv:hosts(p.control_plane)
    if #cps == 0 then fail("no hosts match %s", p.control_plane) end
    -- --limit may hide members: etcd is then judged without them, and nothing is said that
    -- counts them (a member of three is no "only member").
    local hidden = inv:hidden(p.control_plane)
    local hosts, is_cp = inv:hosts(p.nodes), {}
    for _, h in ipairs(cps) do is_cp[h.name] = true end
    local seen = {}
    for _, h in ipairs(hosts) do seen[h.name] = true end
    for _, h in ipairs(cps) do if not seen[h.name] then hosts[#hosts + 1] = h end end
    local vars = hosts[1].vars or {}
    p.prometheus = p.prometheus or vars.prometheus_url
    p.pushgateway = p.pushgateway or vars.pushgateway_url

    local findings = step("examine", function()
      local out = {}
      local sv, route = checks.cluster(p, out, hosts, cps)
      local cp = {}  -- each control-plane node's etcd (static Pod or etcd.service) and API server version
      local quotas = {}  -- member name → its --quota-backend-bytes
      fleet.each(hosts, { at_once = #hosts, max_failures = #hosts }, function(h)
        local ok, err = pcall(function()
          local apiserver = checks.node(p, h, is_cp[h.name], sv, out)
          if is_cp[h.name] then
            cp[h.name] = { etcd = etcd_nodes.where(h), apiserver = apiserver }
            if cp[h.name].etcd == "none" then doctor_etcd.unit(h, out, #cps + #hidden) end
            -- Without kubeadm-config (its API down) a member's data, or the API server's etcd on
            -- loopback, says local etcd lived here.
            if cp[h.name].etcd == "missing" then
              cp[h.name].etcd_data = etcd_nodes.has_data(h)
              cp[h.name].etcd_local = etcd_nodes.apiserver_local(h)
              -- Without its data the manifest is not written again (recover-static-pods refuses):
              -- the copy a replacement or a restore goes on from.
              if not cp[h.name].etcd_data then cp[h.name].etcd_copies = manifest_restore.moved_copies(h, "etcd") end
            end
            if etcd_nodes.runs(cp[h.name].etcd) then  -- a manifest etcd_nodes cannot read leaves etcd's default
              local read, flags = pcall(etcd_nodes.flags, h)
              if read and flags then quotas[etcd_nodes.member_name(h)] = etcd_nodes.quota(h, flags) end
              -- The kubelet starts a static Pod's etcd again and again whatever its data: a member
              -- whose data is gone exits at each start ("has already been bootstrapped").
              if cp[h.name].etcd ~= "systemd" then
                local dir = read and flags and flags["data-dir"] or etcd_nodes.DATA_DIR
                if not etcd_nodes.has_data(h, dir) then cp[h.name].etcd_lost = dir end
                cp[h.name].etcd_flags = read and flags or nil
              end
            end
          end
        end)
        if not ok then
          out[#out + 1] = { name = "node-unreadable", severity = "critical", node = h.name, evidence = tostring(err),
            see = "ssh " .. h.name }
          error(err, 0)  -- the recap says this node was not examined (it said ok), the others go on
        end
      end)
      -- etcd first: how many members are healthy decides what replaces a member that lost its data.
      -- Through the leader's SSH, or the next control-plane node's when the leader or its member is down.
      local leader = groups.optional(inv, "k8s-cp-leader", "k8s-cp-leader")[1] or cps[1]
      local through = { leader }
      for _, h in ipairs(cps) do if h.name ~= leader.name then through[#through + 1] = h end end
      local ok, healthy, via = pcall(doctor_etcd.cluster, p, through, out, quotas)
      if not ok then out[#out + 1] = { name = "etcd", severity = "critical", evidence = tostring(healthy), see = "etcdctl endpoint health --cluster" } end
      checks.control_plane(cp, out, sv ~= nil, ok and healthy or nil, hidden)
      doctor_etcd.fork_risk(cp, out, #cps + #hidden)
      if #hidden > 0 then
        out[#out + 1] = { name = "limit-hides-members", severity = "warning", evidence = string.format("--limit hides %s of %s: " ..
          "etcd is judged through %s alone, and no fix that counts its members is given", table.concat(hidden, ", "),
          p.control_plane, ok and via or leader.name), see = "-e nodes=PATTERN examines fewer nodes, the whole control plane still" }
      end
      checks.monitoring(p, out)
      if route then route:close() end
      return out
    end)

    local rank = { critical = 1, warning = 2, info = 3 }
    table.sort(findings, function(a, b)
      if rank[a.severity] ~= rank[b.severity] then return rank[a.severity] < rank[b.severity] end
      if (a.node or "") ~= (b.node or "") then return (a.node or "") < (b.node or "") end
      if a.name ~= b.name then return a.name < b.name end
      return a.evidence < b.evidence
    end)
    local lines, count = {}, { critical = 0, warning = 0, info = 0 }
    local current
    -- Findings of one kind on one node (eleven certificates expiring on cp2) share a row head and
    -- one see/fix line, printed after the last of them.
    local function group(f) return f and table.concat({ f.severity, f.node or "", f.name, f.see or "", f.runbook or "" }, "\0") end
    local wn, wf = 10, 24  -- the columns widen for longer node names (ip-10-0-1-23.ec2.internal)
    for _, f in ipairs(findings) do wn, wf = math.max(wn, #(f.node or "cluster")), math.max(wf, #f.name) end
    local row = "  %-" .. wn .. "s %-" .. wf .. "s %s"
    for i, f in ipairs(findings) do
      local first = group(findings[i - 1]) ~= group(f)
      -- Counted as the table shows them: one node's nine expired certificates are one finding.
      if first then count[f.severity] = count[f.severity] + 1 end
      if f.severity ~= current then
        current = f.severity
        lines[#lines + 1] = ""
        lines[#lines + 1] = f.severity:upper()
      end
      lines[#lines + 1] = string.format(row, first and (f.node or "cluster") or "", first and f.name or "", f.evidence)
      if group(findings[i + 1]) ~= group(f) then
        lines[#lines + 1] = string.format(row, "", "", "see: " .. (f.see or "-") .. (f.runbook and ("   fix: " .. f.runbook) or ""))
      end
      log.record("finding", f)
    end
    local unread = {}
    for _, f in ipairs(findings) do if f.name == "node-unreadable" then unread[#unread + 1] = f.node end end
    table.sort(unread)
    print(string.format("doctor: %d of %d nodes examined (%d control plane)%s", #hosts - #unread, #hosts, #cps,
      #unread > 0 and ("; not readable: " .. table.concat(unread, ", ")) or ""))
    if #lines > 0 then print(table.concat(lines, "\n")) end
    if count.critical + count.warning > 0 then
      fail("%d critical and %d warning finding(s)", count.critical, count.warning)
    end
    print("\nHealthy: nothing found" .. (count.info > 0 and (" (" .. count.info .. " not checked, above)") or "") .. ".")
  end,
}
