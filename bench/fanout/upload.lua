-- bench/fanout: one SFTP upload, for the comparison with scp.
local ssh = require "engine.ssh"
return runbook {
  name = "bench-upload",
  params = { kh = { type = "string" }, key = { type = "string" }, src = { type = "string" }, dest = { type = "string" } },
  run = function(p, inv)
    ssh.configure { known_hosts = p.kh, identity_files = { p.key } }
    assert(inv:host("n1"):upload(p.src, p.dest))
  end,
}
