-- docs/authoring.md, example 1: a certificate report. Read-only: facts only, nothing journaled.
-- cert-check.lua is the fuller version (served certificates, CAs, timers).
local fleet = require "engine.fleet"
local certs = require "std.certs"
local text = require "std.text"

return runbook {
  name = "cert-report",
  summary = "Days left on every kubeadm certificate of the control plane, soonest first",
  params = {
    group = { type = "string", default = "k8s-cp", help = "inventory group of the control-plane nodes" },
    warn_days = { type = "integer", min = 0, default = 30, help = "fail when a certificate has fewer days left" },
  },
  ---@param p params.cert_report
  ---@param inv engine.Inventory
  run = function(p, inv)
    local rows = {}
    fleet.each(inv:hosts(p.group), { at_once = "100%" }, function(h)
      for _, f in ipairs(certs.files(h, { control_plane = true })) do
        if f.cert then rows[#rows + 1] = { host = h.name, name = f.name, days = f.cert.days_left } end
      end
    end)
    table.sort(rows, function(a, b) return a.days < b.days end)
    local due, table_rows = {}, { { "NODE", "CERTIFICATE", "DAYS LEFT" } }
    for _, r in ipairs(rows) do
      table_rows[#table_rows + 1] = { r.host, r.name, r.days }
      if r.days < p.warn_days then due[#due + 1] = r.host .. " " .. r.name end
    end
    print(text.columns(table_rows, { right = { [3] = true } }))  -- as wide as the longest node name
    if #due > 0 then fail("%d certificates have fewer than %d days left: %s", #due, p.warn_days, table.concat(due, ", ")) end
  end,
}
