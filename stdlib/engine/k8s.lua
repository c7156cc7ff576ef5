-- engine.k8s: the Kubernetes API for runbooks. Generic verbs for any kind (resolved through
-- discovery), and the node operations built on them: cordon and uncordon that remember who
-- cordoned, drain with kubectl's semantics, drain_plan, waits. Expected failures return
-- nil, err, message with err one of "not found", "conflict", "forbidden", "unauthorized",
-- "invalid", "too many requests", "server error", "timeout", "unreachable", "gone".
local api = require "engine.k8s.api"
local check = require "engine.check"
local http = require "engine.http"
local time = require "engine.time"

local M = {}

--- The annotation cordon() leaves, so uncordon() touches only nodes this run cordoned.
M.CORDONED_BY = "engine.dev/cordoned-by"
--- The annotation std.kubeadm.restart_kubelet leaves before it restarts a node's kubelet ("TIME RUN"),
--- so that a later check of the node's Ready history can tell the flap an engine run caused.
M.KUBELET_RESTARTED = "engine.dev/kubelet-restarted"
--- A Ready transition this long after such a restart is taken to be the restart's own (and this
--- long after a Node's creation, its first Ready: it joined).
local OWN_FLAP_WINDOW = 600

M.configure = api.configure
--- lease(name, {ttl = 60, namespace = "kube-system", on_lost = fn}) → lease | nil, "held", message
--- Held by this run and renewed every ttl/3 until lease:release(), the end of a <close> scope, or the
--- end of the run; another run is refused while it is renewed, and may take it over once it lapses.
--- Lost once no renewal succeeds for 2/3 of the TTL: calls that change something then stop the run.
M.lease = api.lease
M.requests = api.requests
M.identity = api.identity

local resources = {}

local function resource(kind)
  local r = resources[kind]
  if r then return r end
  local res, err, msg = api.resource(kind)
  if not res then return nil, err, msg end
  resources[kind] = res
  return res
end

local function query(params)
  local keys = {}
  for k in pairs(params) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = params[k]
    if v ~= nil and v ~= "" then parts[#parts + 1] = k .. "=" .. http.query_escape(tostring(v)) end
  end
  return #parts > 0 and ("?" .. table.concat(parts, "&")) or ""
end

-- "/api/v1/namespaces/ns/pods/name/sub" for a kind: built, checked and escaped in C++
-- (engine/k8s/path.hpp), where a name the API could not hold raises at the runbook's line.
-- Not wrapped in a Lua function: the error names the line that called k8s.get and the like.
local path_for = api.path

-- A node is named by its name or by its inventory host (the host's name is the node's).
local function node_name(node, what)
  if type(node) == "table" and type(node.name) == "string" then return node.name end
  if type(node) == "string" then return node end
  error(string.format("%s: node must be a name or an inventory host, not a %s", what, type(node)), 3)
end

-- Whole seconds for the API (gracePeriodSeconds, timeoutSeconds): "30s" or 30.
local function whole_seconds(v, what, field)
  local s = check.seconds(v, what, field)
  return s and math.tointeger(math.floor(s)) or nil
end

-- As kubectl: a namespaced call without a namespace uses the context's (the service account's in a
-- pod; "default" when the context names none); every namespace only when asked.
local function default_ns()
  local _, _, ns = api.server()
  return ns ~= "" and ns or "default"
end

local function ns_of(res, opts)
  if not res.namespaced then return nil end
  return (opts and opts.namespace) or default_ns()
end

--- get(kind, name, {namespace}) → object | nil, err, message
function M.get(kind, name, opts)
  check.options(opts, { "namespace" }, "k8s.get")
  local res, err, msg = resource(kind)
  if not res then return nil, err, msg end
  local status, body, m = api.call("GET", path_for(res, ns_of(res, opts), name))
  if not status then return nil, body, m end
  return body
end

--- list(kind, {namespace, all_namespaces, label_selector, field_selector, limit}) → items, resource_version
--- Follows `continue` until the list is whole; each page holds at most `limit` items (default 500).
function M.list(kind, opts)
  opts = check.options(opts, { "namespace", "all_namespaces", "label_selector", "field_selector", "limit" }, "k8s.list")
  local res, err, msg = resource(kind)
  if not res then return nil, err, msg end
  local ns = (res.namespaced and not opts.all_namespaces) and (opts.namespace or default_ns()) or nil
  local items, cont, rv = {}, nil, nil
  repeat
    local status, body, m = api.call("GET", path_for(res, ns) .. query {
      labelSelector = opts.label_selector, fieldSelector = opts.field_selector,
      limit = opts.limit or 500, continue = cont })
    if not status then return nil, body, m end
    for _, it in ipairs(body.items or {}) do items[#items + 1] = it end
    cont = body.metadata and body.metadata.continue
    rv = body.metadata and body.metadata.resourceVersion
  until not cont or cont == ""
  return items, rv
end

-- A patch as one short line for the plan ("spec.unschedulable=true"; a JSON patch's "replace
-- /spec/unschedulable=false"): two PATCHes of one node say which is the cordon and which the uncordon.
local function patch_text(body, ptype)
  local parts = {}
  local function value(v)
    local t = type(v) == "string" and v or http.json_encode(v)
    return #t > 60 and (t:sub(1, 57) .. "...") or t
  end
  if ptype == "json" then
    for _, op in ipairs(body) do parts[#parts + 1] = op.op .. " " .. op.path .. (op.value ~= nil and ("=" .. value(op.value)) or "") end
  else
    local function walk(t, prefix)
      local keys = {}
      for k in pairs(t) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      for _, k in ipairs(keys) do
        local v = t[k]
        if type(v) == "table" and next(v) ~= nil and #v == 0 then walk(v, prefix .. k .. ".") else parts[#parts + 1] = prefix .. k .. "=" .. value(v) end
      end
    end
    walk(body, "")
  end
  local text = table.concat(parts, ", ")
  return #text > 200 and (text:sub(1, 197) .. "...") or text
end

local function write(method, kind, namespace, name, body, content_type, sub, q, ptype)
  local res, err, msg = resource(kind)
  if not res then return nil, err, msg end
  local path = path_for(res, namespace, name, sub) .. (q or "")
  if api.dry_run() then
    api.writing(method, path)  -- a read_only runbook's write is refused in a dry run too
    log.info("dry-run: would " .. method, { kind = res.kind, name = name or (body.metadata and body.metadata.name), namespace = namespace,
      patch = method == "PATCH" and ptype ~= "apply" and patch_text(body, ptype) or nil })
    return body
  end
  local status, out, m = api.call(method, path, body, { content_type = content_type })
  if not status then return nil, out, m end
  return out
end

--- create(object, {namespace}) → created | nil, err ("conflict" when it exists)
function M.create(obj, opts)
  check.options(opts, { "namespace" }, "k8s.create")
  local meta = obj.metadata or {}
  local res, err, msg = resource(obj.kind)
  if not res then return nil, err, msg end
  return write("POST", obj.kind, res.namespaced and (meta.namespace or (opts and opts.namespace) or default_ns()) or nil, nil, obj)
end

--- can({verb, group, resource, subresource, name, namespace}, {user, groups}) → allowed, reason |
--- nil, err, message: a SubjectAccessReview for user (without one, a SelfSubjectAccessReview of
--- this run's own credentials). A question, not a change: asked under --dry-run too.
function M.can(attrs, opts)
  check.options(attrs, { "verb", "group", "resource", "subresource", "name", "namespace" }, "k8s.can")
  opts = check.options(opts, { "user", "groups" }, "k8s.can")
  if type(attrs.verb) ~= "string" or type(attrs.resource) ~= "string" then error("k8s.can: verb and resource are required", 2) end
  local self_review = opts.user == nil
  local body = { apiVersion = "authorization.k8s.io/v1", kind = self_review and "SelfSubjectAccessReview" or "SubjectAccessReview",
    spec = { resourceAttributes = attrs } }
  if not self_review then body.spec.user, body.spec.groups = opts.user, opts.groups or { "system:authenticated" } end
  local status, out, m = api.call("POST", "/apis/authorization.k8s.io/v1/" .. (self_review and "selfsubjectaccessreviews" or
    "subjectaccessreviews"), body)
  if not status then return nil, out, m end
  local st = type(out) == "table" and out.status or {}
  return st.allowed == true, st.reason
end

--- update(object) → updated | nil, "conflict" when its resourceVersion is stale
function M.update(obj)
  local meta = obj.metadata or {}
  local res, err, msg = resource(obj.kind)
  if not res then return nil, err, msg end
  return write("PUT", obj.kind, res.namespaced and (meta.namespace or default_ns()) or nil, meta.name, obj)
end

local patch_types = {
  merge = "application/merge-patch+json",
  strategic = "application/strategic-merge-patch+json",
  json = "application/json-patch+json",
  apply = "application/apply-patch+yaml",
}

--- patch(kind, name, patch, {type = "merge"|"strategic"|"json"|"apply", namespace, field_manager, force, subresource})
function M.patch(kind, name, patch, opts)
  opts = check.options(opts, { "type", "namespace", "field_manager", "force", "subresource" }, "k8s.patch")
  local ptype = opts.type or "merge"
  local ct = patch_types[ptype]
  if not ct then error("k8s.patch: type must be merge, strategic, json or apply, not " .. tostring(ptype), 2) end
  local res, err, msg = resource(kind)
  if not res then return nil, err, msg end
  local q = ptype == "apply" and query { fieldManager = opts.field_manager or "engine", force = opts.force and "true" or nil } or ""
  return write("PATCH", kind, ns_of(res, opts), name, patch, ct, opts.subresource, q, ptype)
end

--- delete(kind, name, {namespace, grace_period}) → true | nil, err ("not found" when it is gone)
function M.delete(kind, name, opts)
  opts = check.options(opts, { "namespace", "grace_period" }, "k8s.delete")
  local grace = whole_seconds(opts.grace_period, "k8s.delete", "grace_period")
  local res, err, msg = resource(kind)
  if not res then return nil, err, msg end
  local body = grace and { kind = "DeleteOptions", apiVersion = "v1", gracePeriodSeconds = grace } or nil
  local out, e2, m2 = write("DELETE", kind, ns_of(res, opts), name, body or {})
  if not out then return nil, e2, m2 end
  return true
end

--- watch(kind, {namespace, all_namespaces, label_selector, field_selector, resource_version, timeout}) → watcher
--- watcher:next(seconds) → type, object | nil, "timeout" | nil, "gone" (relist) | nil, "closed"
function M.watch(kind, opts)
  opts = check.options(opts, { "namespace", "all_namespaces", "label_selector", "field_selector", "resource_version", "timeout" }, "k8s.watch")
  local res, err, msg = resource(kind)
  if not res then return nil, err, msg end
  local ns = (res.namespaced and not opts.all_namespaces) and (opts.namespace or default_ns()) or nil
  return api.watch(path_for(res, ns) .. query {
    watch = "1", labelSelector = opts.label_selector, fieldSelector = opts.field_selector,
    resourceVersion = opts.resource_version, timeoutSeconds = whole_seconds(opts.timeout, "k8s.watch", "timeout") or 300, allowWatchBookmarks = "false" })
end

--- server_version() → {major, minor, git_version}
function M.server_version()
  local status, body, m = api.call("GET", "/version")
  if not status then return nil, body, m end
  return { major = body.major, minor = body.minor, git_version = body.gitVersion }
end

--- ready(opts) → true | nil, err, message: the API server's /readyz passes (every readiness check,
--- etcd's among them). opts.retry = false: asked once, a refused or closed connection said at once
--- (for a probe of one route among several; by default the client's retries, ~4 s on a down API).
function M.ready(opts)
  opts = check.options(opts, { "retry" }, "k8s.ready")
  if opts.retry ~= nil and type(opts.retry) ~= "boolean" then error("k8s.ready: retry must be a boolean", 2) end
  local status, body, m = api.call("GET", "/readyz", nil, { retry = opts.retry ~= false })
  if not status then return nil, body, m end
  return true
end

local function condition(obj, kind)
  for _, c in ipairs(((obj.status or {}).conditions) or {}) do
    if c.type == kind then return c.status == "True", c end
  end
  return nil
end

--- Seconds since the epoch of a Kubernetes time ("2026-12-01T23:10:00Z"), nil for another form
--- (days from the civil date, so the controller's time zone plays no part).
local function utc_seconds(s)
  local y, mo, d, h, mi, sec = tostring(s):match("^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)[.%d]*Z$")
  if not y then return nil end
  y, mo = tonumber(y), tonumber(mo)
  if mo <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (mo > 2 and mo - 3 or mo + 9) + 2) // 5 + tonumber(d) - 1
  local days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end

--- The run whose kubelet restart the node's last Ready transition followed (within
--- OWN_FLAP_WINDOW), nil when it did not follow one.
local function flapped_by(n, rc)
  local mark = (n.metadata.annotations or {})[M.KUBELET_RESTARTED]
  local at, run = tostring(mark or ""):match("^(%S+)%s+(%S+)$")
  local t0, t1 = utc_seconds(at), utc_seconds(rc and rc.lastTransitionTime)
  if t0 and t1 and t1 >= t0 and t1 <= t0 + OWN_FLAP_WINDOW then return run end
  return nil
end

--- The node's Ready transition is its first, after it registered (within OWN_FLAP_WINDOW of
--- its creation): a node that joined, not one that flapped.
local function first_ready(n, rc)
  local t0, t1 = utc_seconds(n.metadata.creationTimestamp), utc_seconds(rc and rc.lastTransitionTime)
  return t0 ~= nil and t1 ~= nil and t1 >= t0 and t1 <= t0 + OWN_FLAP_WINDOW
end

--- A node as runbooks need it.
function M.node_info(n)
  local ready, rc = condition(n, "Ready")
  return {
    name = n.metadata.name,
    ready = ready == true,
    ready_since = rc and rc.lastTransitionTime,
    heartbeat = rc and rc.lastHeartbeatTime,
    memory_pressure = condition(n, "MemoryPressure") == true,
    disk_pressure = condition(n, "DiskPressure") == true,
    kubelet_version = ((n.status or {}).nodeInfo or {}).kubeletVersion,
    unschedulable = (n.spec or {}).unschedulable == true,
    cordoned_by = ((n.metadata.annotations or {})[M.CORDONED_BY]),
    flapped_by = flapped_by(n, rc),
    first_ready = first_ready(n, rc),
    labels = n.metadata.labels or {},
    object = n,
  }
end

--- label_hosts(hosts, {zone = "topology.kubernetes.io/zone"}) → hosts | nil, err, message
--- Copies node labels into host variables (host.vars.zone), so fleet.each's max_per can cap by a
--- node label: fleet.each(hosts, {max_per = {zone = 1}}, ...). A host without its node, or a
--- node without the label, gets no variable (and is not capped).
function M.label_hosts(hosts, map)
  local nodes, err, msg = M.nodes()
  if not nodes then return nil, err, msg end
  local by = {}
  for _, n in ipairs(nodes) do by[n.name] = n end
  for _, h in ipairs(hosts) do
    local n = by[h.name]
    if n then
      h.vars = h.vars or {}
      for var, label in pairs(map) do h.vars[var] = n.labels[label] end
    end
  end
  return hosts
end

--- nodes() → list of node_info
function M.nodes()
  local items, err, msg = M.list("nodes")
  if not items then return nil, err, msg end
  local out = {}
  for _, n in ipairs(items) do out[#out + 1] = M.node_info(n) end
  return out
end

-- Nodes a dry run would have cordoned: the node's own record still says schedulable, and the
-- uncordon that would follow belongs in the plan too.
local would_cordon = {}

--- would_be_cordoned(node) → true when this dry run would have cordoned it (always false in a real run).
function M.would_be_cordoned(node)
  return api.dry_run() and would_cordon[node_name(node, "k8s.would_be_cordoned")] == true
end

--- cordon(node) → true | nil, err. A node already cordoned by someone else stays theirs.
function M.cordon(node)
  node = node_name(node, "k8s.cordon")
  local n, err, msg = M.get("nodes", node)
  if not n then return nil, err, msg end
  if (n.spec or {}).unschedulable then
    log.info("already cordoned", { node = node, by = (n.metadata.annotations or {})[M.CORDONED_BY] or "someone else" })
    return true
  end
  local ok, e2, m2 = M.patch("nodes", node, {
    metadata = { annotations = { [M.CORDONED_BY] = api.identity() } }, spec = { unschedulable = true } })
  if not ok then return nil, e2, m2 end
  if api.dry_run() then would_cordon[node] = true else log.info("cordoned", { node = node }) end
  return true
end

--- uncordon(node, {force}) → true | nil, "not ours", message. Only nodes this run cordoned, unless force.
function M.uncordon(node, opts)
  node = node_name(node, "k8s.uncordon")
  check.options(opts, { "force" }, "k8s.uncordon")
  local n, err, msg = M.get("nodes", node)
  if not n then return nil, err, msg end
  local by = (n.metadata.annotations or {})[M.CORDONED_BY]
  local planned = would_cordon[node] and api.dry_run()  -- cordoned by this dry run, as far as the plan goes
  if planned then by, would_cordon[node] = api.identity(), nil end
  if not (n.spec or {}).unschedulable and not planned then return true end
  if by ~= api.identity() and not (opts and opts.force) then
    return nil, "not ours", string.format("node %s was cordoned by %s, not by this run; uncordon it with {force = true}",
      node, by or "an operator")
  end
  -- A JSON patch: the annotation goes (a merge patch would need a JSON null Lua cannot write).
  local ops = { { op = "replace", path = "/spec/unschedulable", value = false } }
  if by then ops[#ops + 1] = { op = "remove", path = "/metadata/annotations/" .. M.CORDONED_BY:gsub("/", "~1") } end
  local ok, e2, m2 = M.patch("nodes", node, ops, { type = "json" })
  if not ok then return nil, e2, m2 end
  if not api.dry_run() then log.info("uncordoned", { node = node }) end
  return true
end

--- wait(kind, name, predicate, {namespace, timeout}) → object | nil, "timeout"
--- Watches the object (relisting after a 410) until predicate(object) is true.
function M.wait(kind, name, predicate, opts)
  opts = check.options(opts, { "namespace", "timeout" }, "k8s.wait")
  if type(predicate) ~= "function" then error("k8s.wait: predicate must be a function(object) returning true when done", 2) end
  local deadline = time.monotonic() + (check.seconds(opts.timeout, "k8s.wait", "timeout") or 300)
  while true do
    local obj, err, msg = M.get(kind, name, { namespace = opts.namespace })
    if obj and predicate(obj) then return obj end
    if not obj and err ~= "not found" then return nil, err, msg end
    local rv = obj and obj.metadata.resourceVersion
    local w, werr, wmsg = M.watch(kind, { namespace = opts.namespace, field_selector = "metadata.name=" .. name,
      resource_version = rv })
    if not w then return nil, werr, wmsg end
    while true do
      local left = deadline - time.monotonic()
      if left <= 0 then w:close(); return nil, "timeout", kind .. " " .. name .. " did not reach the state in time" end
      local typ, o = w:next(left)
      if not typ then
        w:close()
        if o == "timeout" then return nil, "timeout", kind .. " " .. name .. " did not reach the state in time" end
        break  -- "gone" or "closed": relist and watch again
      end
      if typ ~= "DELETED" and predicate(o) then w:close(); return o end
    end
  end
end

--- wait_node(node, {ready = true, version = "1.34.3", heartbeat_after = epoch, timeout}) → node_info | nil, "timeout"
--- heartbeat_after: only a Ready condition the kubelet posted later than that second counts. Right
--- after `systemctl restart kubelet` the Node may still carry the old kubelet's "Ready"; the new
--- kubelet's first status has a newer heartbeat (it posts one when it starts).
function M.wait_node(node, opts)
  node = node_name(node, "k8s.wait_node")
  opts = check.options(opts, { "ready", "version", "heartbeat_after", "timeout" }, "k8s.wait_node")
  local want_ready = opts.ready ~= false
  local want_version = opts.version and ("v" .. tostring(opts.version):gsub("^v", "")) or nil
  local after = opts.heartbeat_after and os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(opts.heartbeat_after))
  local n, err, msg = M.wait("nodes", node, function(o)
    local info = M.node_info(o)
    return info.ready == want_ready and (not want_version or info.kubelet_version == want_version)
      and (not after or (info.heartbeat or "") > after)
  end, { timeout = check.seconds(opts.timeout, "k8s.wait_node", "timeout") })
  if not n then return nil, err, msg end
  return M.node_info(n)
end

require("engine.k8s_taints")(M, node_name)
require("engine.k8s_drain")(M, node_name, whole_seconds)

return M
