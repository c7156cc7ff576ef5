-- bench/fanout: `true` on every host, at_once at a time. With the default idle_timeout (60 s) every
-- session stays open to the end of the run; idle_timeout = 0.5 closes each one soon after its
-- command, as pdsh and parallel-ssh do.
local ssh = require "engine.ssh"
local fleet = require "engine.fleet"
return runbook {
  name = "bench-fanout",
  params = {
    kh = { type = "string", required = true },
    key = { type = "string", required = true },
    at_once = { type = "integer", default = 64 },
    idle_timeout = { type = "number", default = 60 },
  },
  run = function(p, inv)
    ssh.configure { known_hosts = p.kh, identity_files = { p.key }, host_key_policy = "strict",
      idle_timeout = p.idle_timeout }
    local res = fleet.each(inv:group("all"), { at_once = p.at_once }, function(h)
      local r = assert(h:exec("true"))
      assert(r.code == 0)
    end)
    print("RESULT ok=" .. res.ok)
  end,
}
