---@meta std.k8s_repo
-- LuaCATS definitions for require "std.k8s_repo": the Kubernetes package repositories (one per
-- minor on pkgs.k8s.io, or a mirror of that layout), read from the controller over HTTP.

---@class std.k8s_repo
local k8s_repo = {}

--- The upstream repositories, {minor} standing for "1.34".
k8s_repo.DEFAULT = "https://pkgs.k8s.io/core:/stable:/v{minor}/deb"

--- A repository URL with {minor} in it: the hosts' k8s_repo_url var, else the one the node's apt
--- source names (facts.apt_source's text) with its minor made {minor}, else DEFAULT.
---@param vars table|nil  a host's vars
---@param source_text string|nil  the node's Kubernetes apt source
---@return string
function k8s_repo.template(vars, source_text) end

--- The repository of minor ("1.34"): the template's {minor} filled in.
---@param template string
---@param minor string
---@return string
function k8s_repo.url(template, minor) end

--- The kubeadm versions the repository's Packages lists, newest first ({"1.34.3", "1.34.2"}); nil
--- and why when it cannot be read.
---@param url string
---@return string[]|nil versions
---@return string|nil why
function k8s_repo.kubeadm_versions(url) end

return k8s_repo
