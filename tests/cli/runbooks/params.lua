-- Every param type, printed back so the CLI tests can see what the runbook received.
return runbook {
  name = "params",
  summary = "echo the params",
  params = {
    version = { type = "string", required = true, pattern = "^%d+%.%d+%.%d+$", help = "target, e.g. 1.34.3" },
    workers_at_once = { type = "integer", default = 1, help = "workers upgraded at once" },
    ratio = { type = "number", default = 0.9 },
    force = { type = "boolean", default = false },
    kind = { type = "enum", values = { "patch", "minor" }, default = "patch" },
    ignore = { type = "list", default = { "Watchdog" } },
    drain_timeout = { type = "duration", default = "10m" },
    token = { type = "string", secret = true, default = "s3cr3t-default" },
  },
  run = function(p, inv)
    print(string.format("version=%s workers=%d ratio=%s force=%s kind=%s ignore=%s drain=%s",
      p.version, p.workers_at_once, p.ratio, tostring(p.force), p.kind, table.concat(p.ignore, "+"), p.drain_timeout))
    print("integer? " .. math.type(p.workers_at_once))
  end,
}
