-- k8s.taint / k8s.untaint (installed into engine.k8s by k8s.lua): a node taint owned by the run that
-- put it, as the cordon is (its value is the run's identity), so a run removes only its own and a
-- resumed run (same identity) finds and removes what the stopped one left.
local api = require "engine.k8s.api"
local http = require "engine.http"

local EFFECTS = { NoSchedule = true, PreferNoSchedule = true, NoExecute = true }

-- The run's identity as a taint value, which must be a label value: at most 63 characters of
-- [A-Za-z0-9._-], alphanumeric at both ends. A run id fits unless its runbook's name is long; then
-- its head and its tail are kept (the tail holds the run's random suffix), the same every time.
local function owner()
  local id = api.identity():gsub("[^%w%._%-]", "-")
  if #id > 63 then id = id:sub(1, 40) .. "-" .. id:sub(-22) end
  return (id:gsub("^[^%w]+", ""):gsub("[^%w]+$", ""))
end

return function(M, node_name)
  -- Taints a dry run would have put ("node\0key\0effect"): the node's record does not have them,
  -- and their removal belongs in the plan too.
  local would_taint = {}

  local function find(n, key, effect)
    for _, t in ipairs((n.spec or {}).taints or {}) do
      if t.key == key and t.effect == effect then return t end
    end
  end

  -- Node.spec.taints is an atomic list (no merge key): the whole list is written, guarded by the
  -- resourceVersion it was read at (a 409 when the node changed meanwhile: read again, a few times).
  local function rewrite(node, what, change)
    local err, msg
    for _ = 1, 5 do
      local n
      n, err, msg = M.get("nodes", node)
      if not n then return nil, err, msg end
      -- change(n) → the new list; or nil, true: nothing to do; or nil, nil, why: refused
      local taints, nothing, why = change(n)
      if taints == nil then
        if nothing then return true end
        return nil, nil, why
      end
      local ok
      ok, err, msg = M.patch("nodes", node, { metadata = { resourceVersion = n.metadata.resourceVersion },
        spec = { taints = http.json_array(taints) } })
      if ok then return true end
      if err ~= "conflict" then return nil, err, msg end
    end
    return nil, err, what .. ": node " .. node .. " kept changing: " .. tostring(msg)
  end

  local function args(what, key, effect)
    if type(key) ~= "string" or key == "" then error(what .. ": the taint key must be a non-empty string", 3) end
    effect = effect or "PreferNoSchedule"
    if not EFFECTS[effect] then
      error(string.format("%s: effect must be NoSchedule, PreferNoSchedule or NoExecute, not %s", what, tostring(effect)), 3)
    end
    return effect
  end

  --- taint(node, key, effect) → true | nil, "held" | the API's word, message. The taint's value is
  --- this run's identity; a taint of that key and effect that another run or an operator put is
  --- "held" (left alone).
  function M.taint(node, key, effect)
    node = node_name(node, "k8s.taint")
    effect = args("k8s.taint", key, effect)
    if api.dry_run() then  -- the plan says it in words; nothing is written
      local n, err, msg = M.get("nodes", node)
      if not n then return nil, err, msg end
      if not find(n, key, effect) then
        log.info("dry-run: would taint", { node = node, taint = key .. ":" .. effect })
        would_taint[node .. "\0" .. key .. "\0" .. effect] = true
      end
      return true
    end
    local added = false
    local ok, err, msg = rewrite(node, "k8s.taint", function(n)
      local t = find(n, key, effect)
      added = false  -- a retry after a conflict may find it put (by another task of this run)
      if t and t.value == owner() then return nil, true end
      if t then
        return nil, nil, string.format("node %s already has the taint %s:%s (value %q), not this run's", node, key,
          effect, t.value or "")
      end
      added = true
      local out = {}
      for _, x in ipairs((n.spec or {}).taints or {}) do out[#out + 1] = x end
      out[#out + 1] = { key = key, value = owner(), effect = effect }
      return out
    end)
    if ok == nil and err == nil then return nil, "held", msg end
    if ok and added and not api.dry_run() then log.info("tainted", { node = node, taint = key .. ":" .. effect }) end
    return ok, err, msg
  end

  --- untaint(node, key, effect, {force}) → true | nil, "not ours" | the API's word, message. Only a
  --- taint this run put, unless force; none there is success.
  function M.untaint(node, key, effect, opts)
    node = node_name(node, "k8s.untaint")
    effect = args("k8s.untaint", key, effect)
    if api.dry_run() then
      local n, err, msg = M.get("nodes", node)
      if not n then return nil, err, msg end
      local t = find(n, key, effect)
      local planned = would_taint[node .. "\0" .. key .. "\0" .. effect]
      if planned or (t and (t.value == owner() or (opts and opts.force))) then
        would_taint[node .. "\0" .. key .. "\0" .. effect] = nil
        log.info("dry-run: would untaint", { node = node, taint = key .. ":" .. effect })
      end
      return true
    end
    local removed = false
    local ok, err, msg = rewrite(node, "k8s.untaint", function(n)
      local t = find(n, key, effect)
      removed = false  -- a retry after a conflict may find it gone
      if not t then return nil, true end
      if t.value ~= owner() and not (opts and opts.force) then
        return nil, nil, string.format("the taint %s:%s on node %s (value %q) is not this run's; remove it with {force = true}",
          key, effect, node, t.value or "")
      end
      local out = {}
      for _, x in ipairs(n.spec.taints) do
        if x ~= t then out[#out + 1] = x end
      end
      removed = true
      return out
    end)
    if ok == nil and err == nil then return nil, "not ours", msg end
    if ok and removed and not api.dry_run() then log.info("untainted", { node = node, taint = key .. ":" .. effect }) end
    return ok, err, msg
  end
end
