-- std.k8s_repo: the Kubernetes package repositories (pkgs.k8s.io keeps one per minor; a mirror
-- keeps the same layout): where a minor's is, and which kubeadm versions it publishes. Read from
-- the controller over HTTP, so a version can be checked before any node's apt source is changed.
local http = require "engine.http"
local semver = require "std.semver"

local M = {}

--- The upstream repositories, {minor} standing for "1.34".
M.DEFAULT = "https://pkgs.k8s.io/core:/stable:/v{minor}/deb"

--- template(vars, source_text) → a repository URL with {minor} in it: the hosts' k8s_repo_url var,
--- else the one the node's apt source names (source_text, facts.APT_SOURCE's text) with its minor
--- made {minor}, else M.DEFAULT.
function M.template(vars, source_text)
  if vars and vars.k8s_repo_url then return vars.k8s_repo_url end
  local url = type(source_text) == "string" and source_text:match("(%S+/core:/stable:/v%d+%.%d+/deb)")
  if url then return (url:gsub("/v%d+%.%d+/deb$", "/v{minor}/deb")) end
  return M.DEFAULT
end

--- url(template, minor) → the repository of minor ("1.34"): the template's {minor} filled in.
function M.url(template, minor)
  return (template:gsub("{minor}", minor))
end

--- kubeadm_versions(url) → the kubeadm versions the repository's Packages lists, newest first
--- ({"1.34.3", "1.34.2", ...}) | nil, why when it cannot be read.
function M.kubeadm_versions(url)
  local r, err, msg = http.request { url = url .. "/Packages", timeout = 30 }
  if not r then return nil, tostring(msg or err) end
  if r.status ~= 200 then return nil, url .. "/Packages answered " .. r.status end
  local out = {}
  for stanza in (r.body .. "\n\n"):gmatch("(.-)\n\n") do
    local v = stanza:match("^Package: kubeadm\n.-Version: ([%d%.]+)") or stanza:match("\nPackage: kubeadm\n.-Version: ([%d%.]+)")
    if v and semver.parse(v) then out[#out + 1] = v end
  end
  table.sort(out, function(a, b) return semver.compare(a, b) > 0 end)
  return out
end

return M
