-- docs/authoring.md, example 2: a disk triage. Read-only commands (read_only = true: they run
-- under --dry-run too); recover-disk.lua is the fuller version (cleanups, kubelet, prevention).
local fleet = require "engine.fleet"

return runbook {
  name = "disk-triage",
  summary = "Free space and the biggest directories under /var on every node",
  params = {
    min_free = { type = "integer", min = 0, max = 100, default = 15, help = "percent free below which a node is reported" },
  },
  ---@param p params.disk_triage
  ---@param inv engine.Inventory
  run = function(p, inv)
    local low = {}
    fleet.each(inv:hosts("all"), { at_once = 10, max_failures = "10%" }, function(h)
      local df = assert(h:exec("df -P /var | tail -n 1", { read_only = true }))
      local used = tonumber(df.stdout:match("(%d+)%%"))
      if not used then error(h.name .. ": cannot read df: " .. df.stdout) end
      if 100 - used < p.min_free then
        local du = assert(h:exec("du -xsm /var/* 2>/dev/null | sort -rn | head -n 5", { sudo = true, read_only = true }))
        log.warn("low on space", { free = (100 - used) .. "%", biggest = du.stdout:gsub("\n", "; ") })
        low[#low + 1] = h.name
      end
    end)
    if #low > 0 then fail("below %d%% free: %s (recover-disk.lua cleans up)", p.min_free, table.concat(low, ", ")) end
  end,
}
