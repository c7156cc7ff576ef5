---@meta std.semver
-- LuaCATS definitions for require "std.semver": Kubernetes-style versions ("1.34.3", "v1.33.1",
-- "1.34.3-1.1" package versions) and the one-minor-at-a-time rule kubeadm upgrades follow.

---@class std.semver.Version
---@field major integer
---@field minor integer
---@field patch integer
---@field pre string|nil  text after the first '-' ("1.1" of a Debian package revision), if any

---@class std.semver
local semver = {}

--- Parses "1.34.3", "v1.34.3" or "1.34.3-1.1"; nil, "not a version" for anything else.
---@param text string
---@return std.semver.Version|nil, string|nil
function semver.parse(text) end

--- -1, 0 or 1 as a is older than, the same as, or newer than b (the package revision is ignored).
--- Raises on a string that is not a version.
---@param a string|std.semver.Version
---@param b string|std.semver.Version
---@return integer
function semver.compare(a, b) end

--- "1.34.3" (no "v", no package revision).
---@param v string|std.semver.Version
---@return string
function semver.format(v) end

--- "same", "patch" or "minor"; or nil, "downgrade"|"major"|"skips minors", message when the step
--- is not an allowed kubeadm upgrade (one minor at a time, never down, never a major change).
---@param from string|std.semver.Version
---@param to string|std.semver.Version
---@return "same"|"patch"|"minor"|nil kind, "downgrade"|"major"|"skips minors"|nil word, string|nil message
function semver.upgrade_kind(from, to) end

return semver
