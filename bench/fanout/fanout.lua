-- bench/fanout: `true` on every host, at_once at a time; every session stays open to the end.
local ssh = require "engine.ssh"
local fleet = require "engine.fleet"
return runbook {
  name = "bench-fanout",
  params = {
    kh = { type = "string", required = true },
    key = { type = "string", required = true },
    at_once = { type = "integer", default = 64 },
  },
  run = function(p, inv)
    ssh.configure { known_hosts = p.kh, identity_files = { p.key }, host_key_policy = "strict" }
    local res = fleet.each(inv:group("all"), { at_once = p.at_once }, function(h)
      local r = assert(h:exec("true"))
      assert(r.code == 0)
    end)
    print("RESULT ok=" .. res.ok)
  end,
}
