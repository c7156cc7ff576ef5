-- bench/drain: one node drained with kubectl drain's options.
local k8s = require "engine.k8s"
local time = require "engine.time"
return runbook {
  name = "bench-drain",
  params = { kc = { type = "string", required = true }, node = { type = "string", default = "n1" } },
  run = function(p, inv)
    k8s.configure { kubeconfig = p.kc }
    local t0 = time.monotonic()
    local r, err, msg = k8s.drain(p.node, { ignore_daemonsets = true, delete_emptydir = true, timeout = 600 })
    if not r then fail("drain: %s: %s", err, msg) end
    print(string.format("RESULT evicted=%d seconds=%.2f requests=%d", r.evicted, time.monotonic() - t0, k8s.requests()))
  end,
}
