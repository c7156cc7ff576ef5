-- Walks the inventory with fleet.each: what the CLI tests and the demo show.
local fleet = require "engine.fleet"
return runbook {
  name = "fleet",
  summary = "visit every host, at_once at a time",
  params = {
    group = { type = "string", default = "all" },
    at_once = { type = "string", default = "2" },
    nap = { type = "duration", default = "5ms" },
    fail_on = { type = "list", default = {} },
    max_failures = { type = "integer", default = 0 },
  },
  run = function(p, inv)
    local hosts = inv:group(p.group)
    local fails = {}
    for _, n in ipairs(p.fail_on) do fails[n] = true end
    local res = fleet.each(hosts, { at_once = p.at_once, max_failures = p.max_failures }, function(h)
      log.info("visiting", { address = h.vars.ansible_host or h.name })
      sleep(p.nap)
      if fails[h.name] then error("planned failure on " .. h.name) end
      log.info("done")
    end)
    log.info("summary", { ok = res.ok, failed = res.failed })
  end,
}
