---@meta std.cluster_lease
-- LuaCATS definitions for require "std.cluster_lease": the Leases a run that changes a cluster
-- holds: kube-system/engine-cluster, one for every runbook that changes the control plane
-- (k8s-upgrade, cert-renew, the etcd runbooks), and the runbook family's own.

---@class std.cluster_lease.Options
---@field ttl? number   seconds (default: 120); renewed every ttl/3

---@class std.cluster_lease.Leases
---@field shared engine.k8s.Lease   kube-system/engine-cluster
---@field own engine.k8s.Lease      kube-system/NAME
---@field release fun(self: std.cluster_lease.Leases)  releases both

---@class std.cluster_lease
---@field NAMESPACE string  "kube-system"
---@field SHARED string     "engine-cluster"
local cluster_lease = {}

--- Takes kube-system/engine-cluster, then kube-system/NAME; both are renewed by this run until
--- released, the end of the run, or the loss of either (which stops the run). nil, "held", and a
--- message that begins with the lease that could not be taken and names its holder (another run's
--- id names its runbook). Yields.
---@param name string
---@param opts? std.cluster_lease.Options
---@return std.cluster_lease.Leases|nil, string|nil, string|nil
function cluster_lease.take(name, opts) end

return cluster_lease
