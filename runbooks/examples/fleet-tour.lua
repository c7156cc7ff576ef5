-- A tour of the foundation: typed params, the inventory, and fleet.each rolling over hosts with a
-- window and a failure budget. Runs against any inventory; touches nothing.
local fleet = require "engine.fleet"
local time = require "engine.time"

return runbook {
  name = "fleet-tour",
  summary = "Visit every host of a group, a few at a time, and report what the inventory says of each",
  params = {
    group = { type = "string", default = "all", help = "inventory group (or Ansible pattern) to visit" },
    at_once = { type = "string", default = "2", help = "hosts in flight at once: a count or a percentage" },
    pause = { type = "duration", default = "200ms", help = "simulated work per host" },
  },
  ---@param p params.fleet_tour
  ---@param inv engine.Inventory
  run = function(p, inv)
    local hosts = inv:hosts(p.group)
    log.info("touring", { hosts = #hosts, at_once = p.at_once })
    local t0 = time.monotonic()
    local res = fleet.each(hosts, { at_once = p.at_once }, function(h)
      local c = h.vars
      log.info("connection", {
        address = c.ansible_host or h.name,
        port = c.ansible_port or 22,
        user = c.ansible_user or "(ssh config)",
        groups = table.concat(c.group_names, ","),
      })
      sleep(p.pause)
      return #c.group_names
    end)
    log.info("tour finished", { ok = res.ok, failed = res.failed, seconds = string.format("%.2f", time.monotonic() - t0) })
  end,
}
