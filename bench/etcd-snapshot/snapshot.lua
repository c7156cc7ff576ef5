-- bench/etcd-snapshot: one snapshot, timed inside the runbook.
local etcd = require "engine.etcd"
local time = require "engine.time"
return runbook {
  name = "bench-etcd-snapshot",
  params = { dir = { type = "string" }, endpoint = { type = "string" }, path = { type = "string" } },
  run = function(p, inv)
    etcd.configure { endpoints = { p.endpoint }, ca_file = p.dir .. "/ca.crt", cert_file = p.dir .. "/client.crt",
      key_file = p.dir .. "/client.key" }
    local t0 = time.monotonic()
    local r = assert(etcd.snapshot(nil, p.path))
    print(string.format("RESULT size=%d seconds=%.3f", r.size, time.monotonic() - t0))
  end,
}
