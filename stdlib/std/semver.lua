-- Kubernetes-style versions ("1.34.3", "v1.33.1", "1.34.3-1.1" package versions): parse, compare,
-- and the one-minor-at-a-time rule kubeadm upgrades follow.
local M = {}

---@class std.semver.Version
---@field major integer
---@field minor integer
---@field patch integer
---@field pre string|nil  text after the first '-' ("1.1" of a Debian package revision), if any

--- Parses "1.34.3", "v1.34.3" or "1.34.3-1.1". Returns nil, "not a version" for anything else.
---@param text string
---@return std.semver.Version|nil, string|nil
function M.parse(text)
  if type(text) ~= "string" then return nil, "not a version" end
  local major, minor, patch, rest = text:match("^v?(%d+)%.(%d+)%.(%d+)(.*)$")
  if not major then return nil, "not a version" end
  local pre = nil
  if rest ~= "" then
    pre = rest:match("^%-(.+)$")
    if not pre then return nil, "not a version" end
  end
  return { major = tonumber(major), minor = tonumber(minor), patch = tonumber(patch), pre = pre }
end

local function must(v)
  if type(v) == "table" then return v end
  local p, err = M.parse(v)
  if not p then error("semver: '" .. tostring(v) .. "' " .. err, 3) end
  return p
end

--- -1, 0 or 1 as a is older than, the same as, or newer than b (the package revision is ignored).
---@param a string|std.semver.Version
---@param b string|std.semver.Version
---@return integer
function M.compare(a, b)
  a, b = must(a), must(b)
  for _, k in ipairs({ "major", "minor", "patch" }) do
    if a[k] ~= b[k] then return a[k] < b[k] and -1 or 1 end
  end
  return 0
end

--- "1.34.3" for any accepted spelling.
---@param v string|std.semver.Version
---@return string
function M.format(v)
  v = must(v)
  return string.format("%d.%d.%d", v.major, v.minor, v.patch)
end

--- What kind of step from `from` to `to` is: "same", "patch", "minor", or nil, word, message when it
--- is not an allowed kubeadm upgrade: "downgrade", "major" (a major change) or "skips minors".
---@param from string|std.semver.Version
---@param to string|std.semver.Version
---@return string|nil kind, string|nil word, string|nil message
function M.upgrade_kind(from, to)
  from, to = must(from), must(to)
  local c = M.compare(from, to)
  if c == 0 then return "same" end
  if c > 0 then return nil, "downgrade", "downgrade from " .. M.format(from) .. " to " .. M.format(to) end
  if from.major ~= to.major then return nil, "major", "major version change" end
  if to.minor == from.minor then return "patch" end
  if to.minor == from.minor + 1 then return "minor" end
  return nil, "skips minors", string.format("skips %d minor versions (one at a time: %d.%d first)", to.minor - from.minor - 1,
    from.major, from.minor + 1)
end

return M
