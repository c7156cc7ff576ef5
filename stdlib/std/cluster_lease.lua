-- std.cluster_lease: the Leases a run that changes a cluster holds. kube-system/engine-cluster is
-- one for every runbook that changes the control plane (k8s-upgrade, cert-renew, the etcd
-- runbooks): without it each held only its own family's lease, so a certificate renewal could
-- restart the static pods a `kubeadm upgrade apply` was waiting for, or an etcd upgrade swap the
-- binary under kubeadm's etcd phase. Each still holds its family's lease too (k8s-upgrade,
-- engine-certs, engine-etcd: what deploy/rbac.yaml and the operator's tools already know).
-- The recovery runbooks take none: they are run while something is broken, often while a failed
-- run's lease has not yet expired.
local check = require "engine.check"
local k8s = require "engine.k8s"

local M = {}

M.NAMESPACE = "kube-system"
M.SHARED = "engine-cluster"

--- take(name, {ttl = 120}) → lease | nil, err, message: kube-system/engine-cluster, then
--- kube-system/NAME, both renewed by this run until lease:release() (both), the end of the run, or
--- the loss of either (which stops the run, as k8s.lease's does). A resumed run takes them again
--- under its run id. message begins with the lease that could not be taken ("kube-system/NAME: ")
--- and says who holds it (another run's id names its runbook).
-- etcd refuses every write at its quota (NOSPACE), the Lease's too: said with the way out.
local function said(msg)
  msg = tostring(msg)
  if msg:find("database space exceeded", 1, true) then
    msg = msg .. " (etcd's NOSPACE alarm: its database is at its quota and every write is refused; "
      .. "runbooks/etcd-maintenance.lua -e mode=defrag -e compact=true clears it)"
  end
  return msg
end

function M.take(name, opts)
  if type(name) ~= "string" or name == "" then error("cluster_lease.take: name must be a lease name", 2) end
  opts = check.options(opts, { "ttl" }, "cluster_lease.take")
  local ttl = opts.ttl or 120
  local shared, err, msg = k8s.lease(M.SHARED, { namespace = M.NAMESPACE, ttl = ttl })
  if not shared then
    return nil, err, string.format("%s/%s (one engine run changing the cluster at a time): %s", M.NAMESPACE, M.SHARED,
      said(msg or err))
  end
  local own
  own, err, msg = k8s.lease(name, { namespace = M.NAMESPACE, ttl = ttl })
  if not own then
    shared:release()
    return nil, err, string.format("%s/%s: %s", M.NAMESPACE, name, said(msg or err))
  end
  return {
    shared = shared,
    own = own,
    release = function()
      own:release()
      shared:release()
    end,
  }
end

return M
