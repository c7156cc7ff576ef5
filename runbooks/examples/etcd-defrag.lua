-- docs/authoring.md, example 3: an etcd defragmentation, one member at a time, every member healthy
-- before each, the leader last, each member its own journaled step (a resumed run skips the
-- members already done). The controller must reach each member's client port (2379);
-- etcd-maintenance.lua is the fuller version (timers, thresholds, and SSH tunnels to members the
-- controller cannot reach, as in the lab).
local etcd = require "engine.etcd"

return runbook {
  name = "etcd-defrag",
  summary = "Defragment every etcd member, the leader last",
  params = {
    ca = { type = "string", help = "etcd's CA certificate (PEM file on this machine)", required = true },
    cert = { type = "string", help = "a client certificate etcd trusts", required = true },
    key = { type = "string", help = "its key", required = true, secret = true },
  },
  ---@param p params.etcd_defrag
  ---@param inv engine.Inventory
  run = function(p, inv)
    etcd.configure { ca_file = p.ca, cert_file = p.cert, key_file = p.key }
    local eps = etcd.from_inventory(inv:hosts("etcd"))
    if #eps == 0 then fail("the inventory has no etcd group") end
    local leader
    for _, ep in ipairs(eps) do
      local s, err, msg = etcd.status(ep)
      if not s then fail("%s: %s (%s)", ep, err, msg) end
      if s.leader == s.member_id then leader = ep end
    end
    table.sort(eps, function(a, b) return (a == leader and 1 or 0) < (b == leader and 1 or 0) end)
    for _, ep in ipairs(eps) do
      step("defrag " .. ep, function()
        local health, err, msg = etcd.cluster_health(eps)
        if not health or not health.healthy then
          fail("etcd is not healthy before defragmenting %s: %s", ep,
            health and table.concat(health.problems, "; ") or (tostring(err) .. ": " .. tostring(msg)))
        end
        assert(etcd.defrag(ep))
        local s = assert(etcd.status(ep))
        log.info("defragmented", { endpoint = ep, db_mb = s.db_size // 1048576 })
      end)
    end
  end,
}
