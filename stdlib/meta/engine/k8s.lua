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
---@field namespace? string  namespaced kinds (default: the context's namespace, else "default")
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
---@field flapped_by? string      the engine run whose kubelet restart (std.kubeadm.restart_kubelet) the last Ready transition followed within 10 minutes
---@field first_ready boolean     the last Ready transition came within 10 minutes of the Node's creation: it joined, it did not flap
---@field labels table<string,string>
---@field object engine.k8s.Object

---@class engine.k8s.DrainOptions
---@field ignore_daemonsets? boolean  skip DaemonSet pods instead of refusing (default: false)
---@field delete_emptydir? boolean    evict pods with emptyDir volumes (default: false)
---@field force? boolean              evict pods no controller manages (default: false)
---@field grace_period? number|string seconds, instead of each pod's own
---@field timeout? number|string     one global timeout: seconds or "10m" (default: 600)
---@field retry_interval? number|string  the longest wait after a PDB's refusal; a watch on the PDBs retries sooner (default: 5)
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

---@class engine.k8s.ConfigureOptions
---@field kubeconfig? string|string[]
---@field kubeconfig_data? string
---@field context? string
---@field server? string
---@field tls_server_name? string
---@field in_cluster? boolean
---@field qps? number  client-side rate limit, requests a second, > 0 (default: 50, lifted where the server does API Priority and Fairness; a value given here always holds)
---@field burst? number  requests that may go at once, >= 1 (default: 100, lifted with qps's)

--- Which cluster: a kubeconfig (path or list, merged like $KUBECONFIG) and context, or the
--- in-cluster service account. Without it: the inventory's k8s_kubeconfig/k8s_context, then the
--- service account, then $KUBECONFIG or ~/.kube/config. `server` (with `tls_server_name`, the name
--- the certificate is checked against) reaches the same cluster another way, such as an ssh.tunnel
--- to a node: `k8s.configure{server = "https://127.0.0.1:" .. t.port}` keeps the run's credentials.
---@param opts engine.k8s.ConfigureOptions
function k8s.configure(opts) end

---@class engine.k8s.GetOptions
---@field namespace? string  namespaced kinds (default: the context's namespace, else "default")

---@param kind string  "Node", "pods", "deployments.apps", ...
---@param name string
---@param opts? engine.k8s.GetOptions
---@return engine.k8s.Object|nil, string|nil, string|nil
function k8s.get(kind, name, opts) end
---@param kind string  "Node", "pods", "deployments.apps", ...
---@param opts? engine.k8s.ListOptions
---@return engine.k8s.Object[]|nil items, string|nil resource_version_or_err
function k8s.list(kind, opts) end

---@class engine.k8s.CreateOptions
---@field namespace? string  namespaced kinds (default: the context's namespace, else "default")

---@param obj engine.k8s.Object
---@param opts? engine.k8s.CreateOptions
---@return engine.k8s.Object|nil, string|nil, string|nil
function k8s.create(obj, opts) end
--- nil, "conflict" when obj's resourceVersion is stale.
---@param obj engine.k8s.Object
---@return engine.k8s.Object|nil, string|nil, string|nil
function k8s.update(obj) end

---@class engine.k8s.PatchOptions
---@field type? "merge"|"strategic"|"json"|"apply"  (default: "merge")
---@field namespace? string  namespaced kinds (default: the context's namespace, else "default")
---@field field_manager? string  (default: "engine")
---@field force? boolean
---@field subresource? string

---@param kind string  "Node", "pods", "deployments.apps", ...
---@param name string
---@param patch table
---@param opts? engine.k8s.PatchOptions
---@return engine.k8s.Object|nil, string|nil, string|nil
function k8s.patch(kind, name, patch, opts) end

---@class engine.k8s.DeleteOptions
---@field namespace? string  namespaced kinds (default: the context's namespace, else "default")
---@field grace_period? integer  seconds (default: the object's own)

---@param kind string  "Node", "pods", "deployments.apps", ...
---@param name string
---@param opts? engine.k8s.DeleteOptions
---@return true|nil, string|nil, string|nil
function k8s.delete(kind, name, opts) end

---@class engine.k8s.WatchOptions
---@field namespace? string  (default: the context's namespace)
---@field all_namespaces? boolean
---@field label_selector? string
---@field field_selector? string
---@field resource_version? string
---@field timeout? number|string

---@param kind string  "Node", "pods", "deployments.apps", ...
---@param opts? engine.k8s.WatchOptions
---@return engine.k8s.Watcher|nil, string|nil, string|nil
function k8s.watch(kind, opts) end

---@class engine.k8s.WaitOptions
---@field namespace? string  namespaced kinds (default: the context's namespace, else "default")
---@field timeout? number|string  (default: 300 seconds)

--- Waits on a watch (relisting after 410) until predicate(object) holds. Yields.
---@param kind string  "Node", "pods", "deployments.apps", ...
---@param name string
---@param predicate fun(obj: engine.k8s.Object): boolean
---@param opts? engine.k8s.WaitOptions
---@return engine.k8s.Object|nil, string|nil, string|nil
function k8s.wait(kind, name, predicate, opts) end

---@class engine.k8s.WaitNodeOptions
---@field ready? boolean
---@field version? string
---@field heartbeat_after? number
---@field timeout? number|string

--- Waits until the node is Ready (or NotReady with ready = false), at the kubelet version, with a
--- Ready condition posted after heartbeat_after (epoch seconds, the node's clock). Yields.
---@param node string|engine.k8s.Object  a node name or Node object
---@param opts? engine.k8s.WaitNodeOptions
---@return engine.k8s.NodeInfo|nil, string|nil, string|nil
function k8s.wait_node(node, opts) end

---@class engine.k8s.ServerVersionResult
---@field major string
---@field minor string
---@field git_version string

---@return engine.k8s.ServerVersionResult|nil, string|nil
function k8s.server_version() end
---@class engine.k8s.ReadyOpts
---@field retry? boolean  false: asked once, a refused or closed connection said at once; true, the default: the client's retries, ~4 s on a down API

--- The API server's /readyz passes (every readiness check, etcd's among them).
---@param opts? engine.k8s.ReadyOpts
---@return true|nil, string|nil, string|nil
function k8s.ready(opts) end

---@class engine.k8s.CanAttrs
---@field verb string
---@field resource string
---@field group? string
---@field subresource? string
---@field name? string
---@field namespace? string  namespaced kinds (default: the context's namespace, else "default")

---@class engine.k8s.CanOptions
---@field user? string
---@field groups? string[]  (default: {"system:authenticated"})

--- A SubjectAccessReview for user (a SelfSubjectAccessReview of this run's credentials without one): may it do this? Asked under --dry-run too.
---@param attrs engine.k8s.CanAttrs
---@param opts? engine.k8s.CanOptions
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

---@class engine.k8s.UncordonOptions
---@field force? boolean

--- Only nodes this run cordoned, unless force: otherwise nil, "not ours".
---@param node string|engine.k8s.Object  a node name or Node object
---@param opts? engine.k8s.UncordonOptions
---@return true|nil, string|nil, string|nil
function k8s.uncordon(node, opts) end
--- True when this dry run would have cordoned the node (its record still says schedulable): an
--- operation's check that it is uncordoned asks this, so the uncordon a real run makes is in the
--- plan. Always false in a real run.
---@param node string|engine.k8s.Object  a node name or Node object
---@return boolean
function k8s.would_be_cordoned(node) end

--- Puts a taint whose value is this run's identity (as the cordon annotation is): PreferNoSchedule
--- by default. nil, "held" when a taint of that key and effect is someone else's. Yields.
---@param node string|engine.k8s.Object  a node name or Node object
---@param key string  "engine.dev/upgrade-next"
---@param effect? "NoSchedule"|"PreferNoSchedule"|"NoExecute"  (default: "PreferNoSchedule")
---@return true|nil, string|nil, string|nil
function k8s.taint(node, key, effect) end

---@class engine.k8s.UntaintOptions
---@field force? boolean  remove it even when another run or an operator put it (default: false)

--- Removes the taint this run put (none there is success); nil, "not ours" for someone else's unless force. Yields.
---@param node string|engine.k8s.Object  a node name or Node object
---@param key string
---@param effect? "NoSchedule"|"PreferNoSchedule"|"NoExecute"  (default: "PreferNoSchedule")
---@param opts? engine.k8s.UntaintOptions
---@return true|nil, string|nil, string|nil
function k8s.untaint(node, key, effect, opts) end
--- What a drain would do now, without evicting anything.
---@param node string|engine.k8s.Object  a node name or Node object
---@param opts? engine.k8s.DrainOptions
---@return engine.k8s.DrainPlan|nil, string|nil, string|nil
function k8s.drain_plan(node, opts) end

---@class engine.k8s.DrainResult
---@field evicted integer
---@field skipped table

--- kubectl drain's semantics; on timeout the node stays cordoned and the message (and the 4th
--- result, {pods, pdbs}) names what is still there and the PDBs holding it. Yields.
---@param node string|engine.k8s.Object  a node name or Node object
---@param opts? engine.k8s.DrainOptions
---@return engine.k8s.DrainResult|nil, string|nil, string|nil, table|nil
function k8s.drain(node, opts) end

---@class engine.k8s.LeaseOptions
---@field ttl? integer
---@field namespace? string  namespaced kinds (default: the context's namespace, else "default")
---@field on_lost? fun(why: string)

--- A coordination.k8s.io/v1 Lease held by this run and renewed every ttl/3. Lost once no renewal
--- succeeded for 2/3 of the TTL: then every call that changes something (step, exec without
--- read_only, upload, write_file, non-GET API calls, etcd writes) stops the run, or, with on_lost,
--- raises a catchable error and on_lost(why) runs. Yields.
---@param name string a DNS-1123 name
---@param opts? engine.k8s.LeaseOptions
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
