-- Inventory groups a runbook names by convention (k8s-cp-leader, k8s-worker): an inventory may not
-- have them at all (a cluster without workers; the leader left to the first control-plane host),
-- while a pattern someone typed must still match something or raise (inv:hosts).
local M = {}

--- optional(inv, pattern, conventional) → hosts: inv:hosts(pattern); none when the pattern is the
--- conventional group name itself (a param left at its default) and the inventory has no group
--- or host of that name.
function M.optional(inv, pattern, conventional)
  if type(pattern) ~= "string" or type(conventional) ~= "string" then
    error("groups.optional(inv, pattern, conventional): pattern and conventional must be strings", 2)
  end
  if pattern == conventional then
    local known = false
    for _, g in ipairs(inv:groups()) do if g == pattern then known = true end end
    if not known and not pcall(inv.host, inv, pattern) then return {} end
  end
  return inv:hosts(pattern)
end

return M
