-- bench/scheduler: the floor under any task that waits. In Lua built as C++ (lua5.4-c++) every
-- yield is a C++ throw caught in lua_resume; this times bare yield/resume pairs in the same binary
-- and Lua, with no engine work around them; the run prints it under the bare-scheduler floor.
local time = require "engine.time"
return runbook {
  name = "bench-yield-floor",
  params = { n = { type = "integer", default = 100000 } },
  run = function(p)
    local co = coroutine.wrap(function() while true do coroutine.yield() end end)
    co()
    local t0 = time.monotonic()
    for _ = 1, p.n do co() end
    local wall = time.monotonic() - t0
    print(string.format("RESULT yields=%d wall=%.3f", p.n, wall))
  end,
}
