-- A read-only report of every node over SSH: kernel, load, root filesystem use. A node whose / is
-- fuller than the threshold is named (seed 002: a control plane lost to a full disk).
local fleet = require "engine.fleet"

return runbook {
  name = "node-report",
  summary = "Report kernel, load and disk use of every node over SSH; flag nodes whose / is too full",
  params = {
    hosts = { type = "string", default = "all", help = "inventory group or Ansible pattern" },
    at_once = { type = "string", default = "10", help = "nodes asked at once: a count or a percentage" },
    disk_threshold = { type = "integer", min = 0, max = 100, default = 85, help = "percent used on / that counts as too full" },
  },
  ---@param p params.node_report
  ---@param inv engine.Inventory
  run = function(p, inv)
    local hosts = inv:hosts(p.hosts)
    local res = fleet.each(hosts, { at_once = p.at_once }, function(h)
      local r = assert(h:exec("uname -n; uname -r; cut -d' ' -f1 /proc/loadavg; df -P / | awk 'NR==2 {print $5}'",
        { read_only = true, timeout = 30 }))
      if r.code ~= 0 then fail("report command exited %d: %s", r.code, r.stderr) end
      local name, kernel, load, used = r.stdout:match("^(%S+)\n(%S+)\n(%S+)\n(%d+)%%")
      if not name then fail("unexpected report output: %q", r.stdout) end
      used = tonumber(used)
      local fields = { node = name, kernel = kernel, load = load, root_used = used .. "%" }
      if used >= p.disk_threshold then log.warn("root filesystem too full", fields) else log.info("ok", fields) end
      return used
    end)
    local full = {}
    for _, r in ipairs(res) do
      if r.value and r.value >= p.disk_threshold then full[#full + 1] = r.name end
    end
    log.info("report done", { nodes = res.ok, too_full = #full > 0 and table.concat(full, ",") or "none" })
  end,
}
