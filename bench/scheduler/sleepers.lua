-- bench/scheduler: every host's task sleeps `nap` and returns; the runbook reports throughput.
local fleet = require "engine.fleet"
local time = require "engine.time"
return runbook {
  name = "bench-scheduler",
  params = {
    at_once = { type = "integer", default = 1000 },
    nap = { type = "duration", default = "1ms" },
  },
  run = function(p, inv)
    local hosts = inv:group("all")
    print("FLEET start")  -- bench/scheduler/run samples RSS between this line and RESULT
    local t0 = time.monotonic()
    local res = fleet.each(hosts, { at_once = p.at_once }, function(h) sleep(p.nap) end)
    local wall = time.monotonic() - t0
    assert(res.ok == #hosts, "not every task finished")
    print(string.format("RESULT tasks=%d wall=%.3f", #hosts, wall))
  end,
}
