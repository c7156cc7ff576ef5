---@meta std.static_pod
-- LuaCATS definitions for require "std.static_pod": a static pod's container, and its restart.

---@class std.static_pod.Container
---@field id string
---@field created integer   epoch seconds, the node's clock
---@field created_at number   the same with its fraction of a second (to compare within one second)
---@field image? string

---@class std.static_pod
local static_pod = {}
static_pod.MANIFESTS = "/etc/kubernetes/manifests"

--- The running container of static pod `name` (crictl), or nil. Yields.
---@param host engine.Host|string  an inventory host or its name
---@param name string
---@return std.static_pod.Container|nil
function static_pod.container(host, name) end

---@class std.static_pod.RestartOptions
---@field parking string
---@field timeout? number|string  (default: 120 seconds)

---@class std.static_pod.RestartResult
---@field before? std.static_pod.Container
---@field after std.static_pod.Container

--- kubeadm's documented restart: the manifest parked outside manifests/, the pod gone, the
--- manifest back, a new container. Under --dry-run: logged, not done. Yields.
---@param host engine.Host|string  an inventory host or its name
---@param name string
---@param opts std.static_pod.RestartOptions
---@return std.static_pod.RestartResult|{dry_run: true}|nil, string|nil
function static_pod.restart(host, name, opts) end

return static_pod
