-- Certificate expiry, seen everywhere (seed 001: a control plane lost twice to expired
-- certificates). Read only: every certificate kubeadm manages on each control-plane node, the
-- kubelet's client certificate on every node, and what each control-plane endpoint really serves
-- (a renewed file is not served until its component restarts). One table sorted by days left;
-- exit 1 when anything is under the threshold, naming it. Runs on a schedule as well: the rows go
-- to the run log (--log-format json) and to report.json (the step's result).
local certs = require "std.certs"
local fleet = require "engine.fleet"
local text = require "std.text"
local timers = require "cert_timer"

-- What renews a row's certificate: the kubelet's own is not kubeadm's to renew, a CA is a rotation.
local function renewed_by(r)
  if r.name == "kubelet.conf" or r.name == "kubelet-client" then return "runbooks/kubelet-cert-renew.lua" end
  if r.is_ca then return "kubeadm's manual CA rotation (docs/certs.md)" end
  return "runbooks/cert-renew.lua"
end

return runbook {
  name = "cert-check",
  summary = "Expiry of every kubeadm certificate, in files and as served, on every node; exit 1 under the threshold",
  read_only = true,
  params = {
    threshold = { type = "integer", min = 0, default = 30, help = "days: a certificate with fewer left fails the check" },
    control_plane = { type = "string", default = "k8s-cp", help = "inventory group (or pattern) of the control-plane nodes" },
    nodes = { type = "string", default = "all", help = "inventory pattern of the nodes whose kubelet certificate is checked" },
    served = { type = "boolean", default = true, help = "also read what each control-plane endpoint serves" },
  },
  ---@param p params.cert_check
  ---@param inv engine.Inventory
  run = function(p, inv)
    local cps = inv:hosts(p.control_plane)
    if #cps == 0 then fail("no hosts match %s", p.control_plane) end
    local is_cp = {}
    for _, h in ipairs(cps) do is_cp[h.name] = true end
    local hosts = inv:hosts(p.nodes)
    for _, h in ipairs(cps) do
      local seen = false
      for _, x in ipairs(hosts) do if x.name == h.name then seen = true end end
      if not seen then hosts[#hosts + 1] = h end
    end

    local rows = step("certificates", function()
      local found = {}
      local res = fleet.each(hosts, function(h)
        for _, f in ipairs(certs.files(h, { control_plane = is_cp[h.name] })) do
          found[#found + 1] = { node = h.name, name = f.name, where = f.file, cert = f.cert, error = f.error }
        end
        if p.served and is_cp[h.name] then
          local file_serial = {}
          for _, r in ipairs(found) do if r.node == h.name and r.cert then file_serial[r.where] = r.cert.serial end end
          for _, s in ipairs(certs.served(h)) do
            local row = { node = h.name, name = s.name, where = "served " .. s.endpoint, cert = s.cert, error = s.error }
            if s.cert and s.file and file_serial[s.file] and file_serial[s.file] ~= s.cert.serial then
              row.mismatch = "serves serial " .. s.cert.serial .. ", the file holds " .. file_serial[s.file] ..
                " (restart the component to serve the renewed file)"
            end
            found[#found + 1] = row
          end
        end
      end, { at_once = 10, max_failures = #hosts })
      -- A node not read is a row of its own: "every certificate has 30 days left" was said with
      -- a control-plane node's certificates never seen (SSH refused), exit 0.
      for _, r in ipairs(res) do
        if r.status == "failed" then
          local kept = {}
          for _, x in ipairs(found) do if x.node ~= r.name then kept[#kept + 1] = x end end
          found = kept
          found[#found + 1] = { node = r.name, name = "-", where = "-", error = tostring(r.error), unread = true }
        end
      end
      local out = {}  -- journaled as plain rows: what report.json and a resume see
      for _, r in ipairs(found) do
        out[#out + 1] = { node = r.node, name = r.name, where = r.where, error = r.error, mismatch = r.mismatch, unread = r.unread,
          days_left = r.cert and r.cert.days_left, not_after = r.cert and r.cert.not_after_text,
          serial = r.cert and r.cert.serial, subject = r.cert and r.cert.subject, is_ca = r.cert and r.cert.is_ca,
          expired = r.cert and r.cert.expired }
      end
      return out
    end)

    table.sort(rows, function(a, b)
      local da, db = a.days_left or math.huge, b.days_left or math.huge
      if da ~= db then return da < db end
      if a.node ~= b.node then return a.node < b.node end
      return a.where < b.where
    end)
    local lines = { { "NODE", "CERTIFICATE", "WHERE", "DAYS", "NOT AFTER", "NOTE" } }
    local due, unread = {}, {}
    for _, r in ipairs(rows) do
      if r.unread then unread[#unread + 1] = r.error end
      local note = r.error or r.mismatch or (r.is_ca and "CA" or "")
      if r.days_left and (r.days_left < p.threshold or r.expired) then
        note = (r.expired and "EXPIRED" or "due") .. (note ~= "" and ("; " .. note) or "")
        due[#due + 1] = string.format("%s %s (%s, %s): %s", r.node, r.name, r.where,
          r.expired and "expired " .. r.not_after or (r.days_left .. " days left"), renewed_by(r))
      end
      lines[#lines + 1] = { r.node, r.name, r.where, r.days_left, r.not_after, note }
      log.record("certificate", { node = r.node, name = r.name, where = r.where, days_left = r.days_left,
        not_after = r.not_after, serial = r.serial, error = r.error, mismatch = r.mismatch })
      if r.mismatch then log.warn("a renewed certificate is not served yet", { node = r.node, name = r.name, why = r.mismatch }) end
    end
    print(text.columns(lines, { right = { [4] = true } }))
    -- The renewal timer cert-renew installs (timer=true), per control-plane node: when it fires next.
    local timer_of = {}
    fleet.each(cps, function(h)
      local line = timers.timer_line(h)
      timer_of[h.name] = line and (line:gsub("%s+", " ")) or "none"
      log.record("renewal timer", { node = h.name, timer = timer_of[h.name] })
    end, { at_once = 10, max_failures = #cps })
    local tl = {}
    for _, h in ipairs(cps) do tl[#tl + 1] = { h.name, timer_of[h.name] or "unknown" } end
    print("\nRenewal timer (" .. timers.TIMER .. ", installed by cert-renew.lua with timer=true):\n  " ..
      text.columns(tl):gsub("\n", "\n  "))
    if #due > 0 or #unread > 0 then
      local parts = {}
      if #due > 0 then parts[#parts + 1] = string.format("%d certificate(s) under %d days:\n  %s", #due, p.threshold, table.concat(due, "\n  ")) end
      if #unread > 0 then parts[#parts + 1] = string.format("%d node(s) not read, their certificates unknown:\n  %s", #unread, table.concat(unread, "\n  ")) end
      fail("%s", table.concat(parts, "\n"))
    end
    print(string.format("\nEvery certificate has %d days or more left.", p.threshold))
  end,
}
