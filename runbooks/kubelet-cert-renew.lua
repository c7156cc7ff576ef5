-- Certificate renewal for the kubelet's own client certificate (seed 001: a node off past its
-- certificate's end; at start the kubelet says "part of the existing bootstrap client certificate is
-- expired", finds no bootstrap-kubelet.conf and exits, and the node stays NotReady). The kubelet
-- rotates that certificate itself while it runs; kubeadm certs renew does not touch it. This is
-- kubeadm's procedure for a failed rotation, node by node: a new certificate for system:node:NAME
-- signed on a control-plane node (`kubeadm kubeconfig user --org system:nodes`), the old
-- credentials kept, the new ones in /var/lib/kubelet/pki/kubelet-client-current.pem with
-- kubelet.conf pointing at it (where the kubelet's rotation goes on from), the kubelet restarted
-- and the Node Ready again.
local cluster_lease = require "std.cluster_lease"
local creds = require "kubelet_creds"
local fleet = require "engine.fleet"
local http = require "engine.http"
local k8s = require "engine.k8s"
local kubeadm = require "std.kubeadm"
local ops = require "std.ops"
local text = require "std.text"

return runbook {
  name = "kubelet-cert-renew",
  summary = "Replace an expired (or expiring) kubelet client certificate: a new one signed on a control-plane node, the kubelet restarted",
  params = {
    nodes = { type = "string", default = "all", help = "inventory pattern of the nodes whose kubelet certificate is examined" },
    control_plane = { type = "string", default = "k8s-cp",
      help = "inventory group (or pattern) of the control-plane nodes: the first holding the CA key signs" },
    under_days = { type = "integer", min = 0, default = 0,
      help = "also replace a certificate with fewer days left (default: only an expired or unreadable one; the kubelet rotates the others itself)" },
    at_once = { type = "amount", default = "1", pattern = "^0*[1-9]%d*%%?$", help = "nodes at a time (a count or a percentage)" },
    backup_dir = { type = "string", default = "/var/lib/kubelet/engine-backup", pattern = "^/",
      help = "where each node keeps its old kubelet.conf and client certificates (credentials-TIME/, 0700)" },
    ready_timeout = { type = "duration", default = "3m", help = "for the Node to be Ready after the kubelet's restart" },
  },
  ---@param p params.kubelet_cert_renew
  ---@param inv engine.Inventory
  run = function(p, inv)
    local cps = inv:hosts(p.control_plane)
    if #cps == 0 then fail("no hosts match %s", p.control_plane) end
    local hosts = inv:hosts(p.nodes)
    if #hosts == 0 then fail("no hosts match %s", p.nodes) end

    -- 1. Precheck, read only: each node's certificate, a signer, the API (for the Nodes' Ready).
    local plan = step("precheck", function()
      local rows, problems, due, signer = {}, {}, {}, nil
      local res = fleet.each(hosts, { at_once = 10, max_failures = #hosts }, function(h)
        local row = creds.in_use(h)
        if not row then
          problems[#problems + 1] = string.format("%s: no %s: not joined to a cluster (kubeadm join)", h.name, creds.KUBELET_CONF)
          return
        end
        local is_due, why = creds.due(row, p.under_days > 0 and p.under_days or nil)
        rows[#rows + 1] = { h.name, row.file, row.cert and row.cert.not_after_text or "-",
          is_due and ("replace: " .. why) or (row.cert.days_left .. " days left") }
        if is_due then due[#due + 1] = h.name end
      end)
      for _, r in ipairs(res) do
        if r.status == "failed" then problems[#problems + 1] = tostring(r.error) end
      end
      for _, h in ipairs(cps) do
        local ok, why = pcall(creds.signer_problem, h)
        if ok and not why then signer = h.name break end
        problems[#problems + 1] = string.format("%s cannot sign: %s", h.name, tostring(why))
      end
      if signer then  -- the others' reasons are not problems once one can sign
        for i = #problems, 1, -1 do if problems[i]:find(" cannot sign: ", 1, true) then table.remove(problems, i) end end
      end
      if #due > 0 then
        local ok, err, msg = k8s.ready()
        if not ok then
          problems[#problems + 1] = string.format("the API: %s (expired control-plane certificates? runbooks/cert-renew.lua first)",
            tostring(msg or err))
        end
      end
      table.sort(due)
      table.sort(rows, function(a, b) return a[1] < b[1] end)
      return { rows = rows, due = due, signer = signer, problems = problems }
    end, { probe = function() return false end })
    table.insert(plan.rows, 1, { "NODE", "CERTIFICATE", "NOT AFTER", "STATE" })
    print(text.columns(plan.rows))
    if #plan.problems > 0 then
      table.sort(plan.problems)
      fail("precheck failed, nothing was changed:\n  %s", table.concat(plan.problems, "\n  "))
    end
    if #plan.due == 0 then
      print("\nNothing to replace: every kubelet client certificate is valid" ..
        (p.under_days > 0 and string.format(" for %d days or more.", p.under_days) or "."))
      return
    end
    local lease
    if not http.dry_run() then
      local l, err, msg = cluster_lease.take("engine-certs")
      if not l then fail("the cluster lease %s", msg or err) end
      lease = l
    end

    -- 2. Node by node: new credentials, then the kubelet restarted and the Node Ready.
    local signer = inv:host(plan.signer)
    local due_hosts = {}
    for _, name in ipairs(plan.due) do due_hosts[#due_hosts + 1] = inv:host(name) end
    fleet.each(due_hosts, { at_once = p.at_once }, function(h)
      -- {file, serial} when this run wrote new credentials (journaled: a resume has it too); nil
      -- when the node was found valid after all.
      local written = ops.step(h, ops.define {
        name = "kubelet client certificate",
        holds = function(host)
          local is_due, why = creds.due(creds.in_use(host), p.under_days > 0 and p.under_days or nil)
          return not is_due, why
        end,
        apply = function(host)
          local server, ca_data = creds.cluster_of(host)
          local backup = p.backup_dir .. "/credentials-" .. os.date("!%Y%m%dT%H%M%SZ")
          if http.dry_run() then
            log.info("dry-run: would sign a certificate for system:node:" .. host.name .. " on " .. signer.name ..
              " (kubeadm kubeconfig user --org system:nodes), keep the old credentials in " .. backup .. ", write " ..
              creds.CURRENT .. " and " .. creds.KUBELET_CONF .. " (server " .. server .. ")", { node = host.name })
            return { dry_run = true }  -- the plan's restart follows, as in the real run
          end
          local pem, cert = creds.issue(signer, host.name)
          local file = creds.install(host, pem, server, ca_data, backup)
          log.info("new kubelet credentials", { node = host.name, file = file, serial = cert.serial,
            not_after = cert.not_after_text, signed_on = signer.name, old_kept_in = backup })
          return { file = file, serial = cert.serial }
        end,
        -- The node's kubelet now has the certificate just issued (under_days may ask for more
        -- days than kubeadm gives one: a year).
        verify = function(host, out)
          local row = creds.in_use(host)
          local serial = row and row.cert and row.cert.serial
          return serial == out.serial and not row.cert.expired, "its certificate in use has serial " .. tostring(serial) ..
            ", not the new " .. tostring(out.serial)
        end,
      })
      ops.step(h, ops.define {
        name = "kubelet running with them",
        -- After new credentials, always restarted (a running kubelet keeps its old certificate in
        -- memory, and a restart is safe to repeat); otherwise only if the Node is not Ready.
        holds = not written and function(host)
          local n = k8s.get("nodes", host.name)
          local info = n and k8s.node_info(n)
          return info ~= nil and info.ready == true, info and "Ready is not True" or "no Node " .. host.name
        end or nil,
        apply = function(host)
          kubeadm.restart_kubelet_ready(host, { timeout = p.ready_timeout,
            hint = "with its new credentials: journalctl -u kubelet; the old ones are in " .. p.backup_dir })
        end,
      })
    end)
    if lease then lease:release() end
  end,
}
