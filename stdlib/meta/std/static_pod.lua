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

--- Waits until a container of static pod `name` created at `since` or later (the node's clock,
--- epoch seconds with a fraction) runs: the kubelet's answer to a manifest changed at that time. Yields.
---@param host engine.Host|string  an inventory host or its name
---@param name string
---@param since number
---@param timeout? number  seconds (default 120)
---@return std.static_pod.Container|nil, string|nil  nil and why at the timeout
function static_pod.new_container(host, name, since, timeout) end

---@class std.static_pod.RestartOptions
---@field parking string
---@field timeout? number|string  (default: 120 seconds)

---@class std.static_pod.RestartResult
---@field before? std.static_pod.Container
---@field after std.static_pod.Container

--- Moves manifests/NAME.yaml to parked (an absolute file path outside manifests/, its directory made 0700) when it is there, then waits until no NAME container runs. A manifest already parked stays. Under --dry-run: the command only. Yields.
---@param host engine.Host|string
---@param name string  the static pod: kube-apiserver, etcd, ...
---@param parked string
---@param timeout? number|string  seconds or a duration (default 120)
---@return true|nil, string|nil  nil and why when a container still runs at the timeout
function static_pod.park(host, name, parked, timeout) end

--- kubeadm's documented restart: the manifest parked outside manifests/, the pod gone, the
--- manifest back, a new container. Under --dry-run: logged, not done. Yields.
---@param host engine.Host|string  an inventory host or its name
---@param name string
---@param opts std.static_pod.RestartOptions
---@return std.static_pod.RestartResult|{dry_run: true}|nil, string|nil
function static_pod.restart(host, name, opts) end

return static_pod
