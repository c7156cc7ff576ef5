---@meta std.removed_apis
-- LuaCATS definitions for require "std.removed_apis": before a minor upgrade, the objects served only
-- through API versions the target minor removes (Kubernetes' deprecation guide, by release).

---@class std.removed_apis.Entry
---@field group string
---@field version string
---@field resource string   plural, "podsecuritypolicies"
---@field kind string
---@field use string        the version to move to ("policy/v1"), "" when there is no successor

---@class std.removed_apis.Finding
---@field api string        "policy/v1beta1"
---@field resource string
---@field kind string
---@field removed_in string "1.25"
---@field use string        "" when there is no successor
---@field objects string[]  "ns/name" of at most 20 of them
---@field count integer

---@class std.removed_apis
local removed_apis = {}

--- Minor → the APIs that minor removes.
---@type table<integer, std.removed_apis.Entry[]>
removed_apis.REMOVED = {}

--- Every API the minors after `from` up to `to` remove that this cluster serves with objects no
--- other version serves (discovery, then a list through the old version). Read-only. Yields.
---@param from string  "1.24.17"
---@param to string    "1.25.0"
---@return std.removed_apis.Finding[]|nil findings, string|nil word, string|nil message
function removed_apis.check(from, to) end

--- One line per finding: "2 PodSecurityPolicy (policy/v1beta1 podsecuritypolicies) served only through ...".
---@param finding std.removed_apis.Finding
---@return string
function removed_apis.describe(finding) end

return removed_apis
