---@meta engine.k8s
-- LuaCATS definitions for require "engine.k8s". Expected failures return nil, err, message with err one
-- of "not found", "conflict", "forbidden", "unauthorized", "invalid", "too many requests",
-- "server error", "timeout", "unreachable", "gone", "unknown kind", and for the node operations
-- "refused", "not ours", "held", "failed".

---@class engine.k8s.Object: table
---@field apiVersion string
---@field kind string
---@field metadata table

---@class engine.k8s.ListOptions
---@field namespace? string
---@field all_namespaces? boolean
---@field label_selector? string   "app=web,tier!=db"
---@field field_selector? string   "spec.nodeName=w1"
---@field limit? integer           page size; pages are followed (default: 500)

---@class engine.k8s.NodeInfo
---@field name string
---@field ready boolean
---@field ready_since? string   the Ready condition's lastTransitionTime (RFC 3339, UTC)
---@field heartbeat? string     the Ready condition's lastHeartbeatTime: when the kubelet last posted it
---@field memory_pressure boolean
---@field disk_pressure boolean
---@field kubelet_version string
---@field unschedulable boolean
---@field cordoned_by? string     the run that cordoned it (nil: not cordoned by an engine run)
---@field labels table<string,string>
---@field object engine.k8s.Object

---@class engine.k8s.DrainOptions
---@field ignore_daemonsets? boolean  skip DaemonSet pods instead of refusing (default: false)
---@field delete_emptydir? boolean    evict pods with emptyDir volumes (default: false)
---@field force? boolean              evict pods no controller manages (default: false)
---@field grace_period? number|string seconds, instead of each pod's own
---@field timeout? number|string     one global timeout: seconds or "10m" (default: 600)
---@field retry_interval? number|string  between a PDB's refusals (default: 5)
---@field poll_interval? number|string   between checks that an evicted pod is gone (default: 1)
---@field disable_eviction? boolean   delete instead of evicting: bypasses PDBs (default: false)

---@class engine.k8s.DrainPlan
---@field evict {pod: string, reason: string}[]
---@field skip {pod: string, reason: string}[]
---@field refuse {pod: string, reason: string}[]
---@field blocking {pdb: string, disruptions_allowed: integer, pods: string[]}[]

---@class engine.k8s.Watcher
local Watcher = {}
--- The next event, waiting at most `seconds`. Yields.
---@param seconds? number
---@return string|nil type "ADDED"|"MODIFIED"|"DELETED" (nil: "timeout", "gone" to relist, "closed")
---@return engine.k8s.Object|string
function Watcher:next(seconds) end
function Watcher:close() end

---@class engine.k8s.Lease
---@field held boolean
---@field lost boolean
---@field name string
---@field holder string
local Lease = {}
--- Clears the holder now (also at the end of a <close> scope and of the run). Yields.
function Lease:release() end

local k8s = {}

--- Which cluster: a kubeconfig (path or list, merged like $KUBECONFIG) and context, or the
--- in-cluster service account. Without it: the inventory's k8s_kubeconfig/k8s_context, then the
--- service account, then $KUBECONFIG or ~/.kube/config.
---@param opts {kubeconfig?: string|string[], kubeconfig_data?: string, context?: string, server?: string, tls_server_name?: string, in_cluster?: boolean, qps?: number, burst?: number}
function k8s.configure(opts) end

---@param kind string  "Node", "pods", "deployments.apps", ...
---@param name string
---@param opts? {namespace?: string}
---@return engine.k8s.Object|nil, string|nil, string|nil
function k8s.get(kind, name, opts) end
---@param kind string  "Node", "pods", "deployments.apps", ...
---@param opts? engine.k8s.ListOptions
---@return engine.k8s.Object[]|nil items, string|nil resource_version_or_err
function k8s.list(kind, opts) end
---@param obj engine.k8s.Object
---@param opts? {namespace?: string}
---@return engine.k8s.Object|nil, string|nil, string|nil
function k8s.create(obj, opts) end
--- nil, "conflict" when obj's resourceVersion is stale.
---@param obj engine.k8s.Object
---@return engine.k8s.Object|nil, string|nil, string|nil
function k8s.update(obj) end
---@param kind string  "Node", "pods", "deployments.apps", ...
---@param name string
---@param patch table
---@param opts? {type?: "merge"|"strategic"|"json"|"apply", namespace?: string, field_manager?: string, force?: boolean, subresource?: string}
---@return engine.k8s.Object|nil, string|nil, string|nil
function k8s.patch(kind, name, patch, opts) end
---@param kind string  "Node", "pods", "deployments.apps", ...
---@param name string
---@param opts? {namespace?: string, grace_period?: integer}
---@return true|nil, string|nil, string|nil
function k8s.delete(kind, name, opts) end
---@param kind string  "Node", "pods", "deployments.apps", ...
---@param opts? {namespace?: string, all_namespaces?: boolean, label_selector?: string, field_selector?: string, resource_version?: string, timeout?: number|string}
---@return engine.k8s.Watcher|nil, string|nil, string|nil
function k8s.watch(kind, opts) end
--- Waits on a watch (relisting after 410) until predicate(object) holds. Yields.
---@param kind string  "Node", "pods", "deployments.apps", ...
---@param name string
---@param predicate fun(obj: engine.k8s.Object): boolean
---@param opts? {namespace?: string, timeout?: number|string}
---@return engine.k8s.Object|nil, string|nil, string|nil
function k8s.wait(kind, name, predicate, opts) end
--- Waits until the node is Ready (or NotReady with ready = false), at the kubelet version, with a
--- Ready condition posted after heartbeat_after (epoch seconds, the node's clock). Yields.
---@param node string|engine.k8s.Object  a node name or Node object
---@param opts? {ready?: boolean, version?: string, heartbeat_after?: number, timeout?: number|string}
---@return engine.k8s.NodeInfo|nil, string|nil, string|nil
function k8s.wait_node(node, opts) end
---@return {major: string, minor: string, git_version: string}|nil, string|nil
function k8s.server_version() end
--- The API server's /readyz passes (every readiness check, etcd's among them).
---@return true|nil, string|nil, string|nil
function k8s.ready() end
--- A SubjectAccessReview for user (a SelfSubjectAccessReview of this run's credentials without one): may it do this? Asked under --dry-run too.
---@param attrs {verb: string, resource: string, group?: string, subresource?: string, name?: string, namespace?: string}
---@param opts? {user?: string, groups?: string[]}
---@return boolean|nil allowed, string|nil reason_or_err, string|nil message
function k8s.can(attrs, opts) end
---@return engine.k8s.NodeInfo[]|nil, string|nil
function k8s.nodes() end
---@param node_object engine.k8s.Object
---@return engine.k8s.NodeInfo
function k8s.node_info(node_object) end
--- Marks the node unschedulable and records this run in an annotation. A node already cordoned
--- stays as it was (and stays the operator's).
---@param node string|engine.k8s.Object  a node name or Node object
---@return true|nil, string|nil, string|nil
function k8s.cordon(node) end
--- Only nodes this run cordoned, unless force: otherwise nil, "not ours".
---@param node string|engine.k8s.Object  a node name or Node object
---@param opts? {force?: boolean}
---@return true|nil, string|nil, string|nil
function k8s.uncordon(node, opts) end
--- What a drain would do now, without evicting anything.
---@param node string|engine.k8s.Object  a node name or Node object
---@param opts? engine.k8s.DrainOptions
---@return engine.k8s.DrainPlan|nil, string|nil, string|nil
function k8s.drain_plan(node, opts) end
--- kubectl drain's semantics; on timeout the node stays cordoned and the message (and the 4th
--- result, {pods, pdbs}) names what is still there and the PDBs holding it. Yields.
---@param node string|engine.k8s.Object  a node name or Node object
---@param opts? engine.k8s.DrainOptions
---@return {evicted: integer, skipped: table}|nil, string|nil, string|nil, table|nil
function k8s.drain(node, opts) end
--- A coordination.k8s.io/v1 Lease held by this run and renewed every ttl/3. Lost once no renewal
--- succeeded for 2/3 of the TTL: then every call that changes something (step, exec without
--- read_only, upload, write_file, non-GET API calls, etcd writes) stops the run, or, with on_lost,
--- raises a catchable error and on_lost(why) runs. Yields.
---@param name string a DNS-1123 name
---@param opts? {ttl?: integer, namespace?: string, on_lost?: fun(why: string)}
---@return engine.k8s.Lease|nil, string|nil, string|nil
function k8s.lease(name, opts) end
--- Copies node labels into host variables (host.vars[var] = the node's label), for max_per.
---@param hosts engine.Host[]
---@param map table<string, string>  var = label
---@return engine.Host[]|nil, string|nil, string|nil
function k8s.label_hosts(hosts, map) end

--- HTTP requests this run has sent to the API.
---@return integer
function k8s.requests() end
--- This run's identity (the cordon annotation's value, the lease holder).
---@return string
function k8s.identity() end

return k8s
