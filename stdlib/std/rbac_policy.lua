-- std.rbac_policy: the control plane's own RBAC as the API server's bootstrap policy defines it
-- (seed 000 lost the scheduler's), as data: the ClusterRoles system:kube-scheduler,
-- system:volume-scheduler and system:kube-controller-manager with their ClusterRoleBindings, and
-- kubeadm's kubeadm:cluster-admins binding (admin.conf's group since kubeadm v1.29; kubeadm#3308).
-- Source: kubernetes/kubernetes plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata/
-- cluster-roles.yaml and cluster-role-bindings.yaml (the rendered bootstrap policy), the same for
-- v1.29 to v1.35 for these roles. Rules the API server adds only behind a feature gate are not here.
local M = {}

local READ = { "get", "list", "watch" }

local function rule(groups, resources, verbs, names)
  return { apiGroups = groups, resources = resources, verbs = verbs, resourceNames = names }
end

local SCHEDULER = {
  rule({ "", "events.k8s.io" }, { "events" }, { "create", "patch", "update" }),
  rule({ "coordination.k8s.io" }, { "leases" }, { "create" }),
  rule({ "coordination.k8s.io" }, { "leases" }, { "get", "update" }, { "kube-scheduler" }),
  rule({ "" }, { "nodes" }, READ),
  rule({ "" }, { "pods" }, { "delete", "get", "list", "watch" }),
  rule({ "" }, { "bindings", "pods/binding" }, { "create" }),
  rule({ "" }, { "pods/status" }, { "patch", "update" }),
  rule({ "" }, { "replicationcontrollers", "services" }, READ),
  rule({ "apps", "extensions" }, { "replicasets" }, READ),
  rule({ "apps" }, { "statefulsets" }, READ),
  rule({ "policy" }, { "poddisruptionbudgets" }, READ),
  rule({ "" }, { "persistentvolumeclaims", "persistentvolumes" }, READ),
  rule({ "authentication.k8s.io" }, { "tokenreviews" }, { "create" }),
  rule({ "authorization.k8s.io" }, { "subjectaccessreviews" }, { "create" }),
  rule({ "storage.k8s.io" }, { "csinodes" }, READ),
  rule({ "" }, { "namespaces" }, READ),
  rule({ "storage.k8s.io" }, { "csidrivers" }, READ),
  rule({ "storage.k8s.io" }, { "csistoragecapacities" }, READ),
}

local VOLUME_SCHEDULER = {
  rule({ "" }, { "persistentvolumes" }, { "get", "list", "patch", "update", "watch" }),
  rule({ "storage.k8s.io" }, { "storageclasses" }, READ),
  rule({ "" }, { "persistentvolumeclaims" }, { "get", "list", "patch", "update", "watch" }),
}

local CONTROLLER_MANAGER = {
  rule({ "", "events.k8s.io" }, { "events" }, { "create", "patch", "update" }),
  rule({ "coordination.k8s.io" }, { "leases" }, { "create" }),
  rule({ "coordination.k8s.io" }, { "leases" }, { "get", "update" }, { "kube-controller-manager" }),
  rule({ "" }, { "secrets", "serviceaccounts" }, { "create" }),
  rule({ "" }, { "secrets" }, { "delete" }),
  rule({ "" }, { "configmaps", "namespaces", "secrets", "serviceaccounts" }, { "get" }),
  rule({ "" }, { "secrets", "serviceaccounts" }, { "update" }),
  rule({ "authentication.k8s.io" }, { "tokenreviews" }, { "create" }),
  rule({ "authorization.k8s.io" }, { "subjectaccessreviews" }, { "create" }),
  rule({ "*" }, { "*" }, { "list", "watch" }),
  rule({ "" }, { "serviceaccounts/token" }, { "create" }),
}

--- COMPONENTS[name] → {user, roles = {{role, rules, binding}}}: what each component runs as and
--- the roles it needs, each bound to it by a ClusterRoleBinding of the role's name.
M.COMPONENTS = {
  ["kube-scheduler"] = { user = "system:kube-scheduler", roles = {
    { role = "system:kube-scheduler", rules = SCHEDULER, binding = "system:kube-scheduler" },
    { role = "system:volume-scheduler", rules = VOLUME_SCHEDULER, binding = "system:volume-scheduler" } } },
  ["kube-controller-manager"] = { user = "system:kube-controller-manager", roles = {
    { role = "system:kube-controller-manager", rules = CONTROLLER_MANAGER, binding = "system:kube-controller-manager" } } },
}

--- kubeadm's binding of its admin group (admin.conf) to cluster-admin.
M.CLUSTER_ADMINS = { binding = "kubeadm:cluster-admins", role = "cluster-admin", group = "kubeadm:cluster-admins" }

local function labels()
  return { ["kubernetes.io/bootstrapping"] = "rbac-defaults" }
end

--- cluster_role(name, rules) → the ClusterRole object, as the bootstrap policy writes it.
function M.cluster_role(name, rules)
  local out = {}
  for i, r in ipairs(rules) do
    out[i] = { apiGroups = r.apiGroups, resources = r.resources, verbs = r.verbs, resourceNames = r.resourceNames }
  end
  return { apiVersion = "rbac.authorization.k8s.io/v1", kind = "ClusterRole",
    metadata = { name = name, labels = labels(), annotations = { ["rbac.authorization.kubernetes.io/autoupdate"] = "true" } },
    rules = out }
end

--- cluster_role_binding(name, role, subject) → the ClusterRoleBinding object.
function M.cluster_role_binding(name, role, subject)
  return { apiVersion = "rbac.authorization.k8s.io/v1", kind = "ClusterRoleBinding",
    metadata = { name = name, labels = labels(), annotations = { ["rbac.authorization.kubernetes.io/autoupdate"] = "true" } },
    roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = role },
    subjects = { { apiGroup = "rbac.authorization.k8s.io", kind = subject.kind, name = subject.name } } }
end

--- checks(rules) → the access each rule grants, one {verb, group, resource, subresource, name}
--- per combination: what SubjectAccessReviews ask. "*" is asked as itself.
function M.checks(rules)
  local out = {}
  for _, r in ipairs(rules) do
    for _, g in ipairs(r.apiGroups) do
      for _, res in ipairs(r.resources) do
        local resource, sub = res:match("^([^/]+)/(.+)$")
        for _, v in ipairs(r.verbs) do
          for _, name in ipairs(r.resourceNames or { false }) do
            out[#out + 1] = { verb = v, group = g, resource = resource or res, subresource = sub, name = name or nil }
          end
        end
      end
    end
  end
  return out
end

--- describe(check) → "create pods/binding", "get leases.coordination.k8s.io kube-scheduler".
function M.describe(c)
  return c.verb .. " " .. c.resource .. (c.subresource and ("/" .. c.subresource) or "") ..
    (c.group ~= "" and ("." .. c.group) or "") .. (c.name and (" " .. c.name) or "")
end

--- missing_rules(have, want) → the rules of want that no rule of have grants whole (a rule is
--- granted when each of its verb × group × resource × name is).
function M.missing_rules(have, want)
  local function grants(r, c)
    local function has(list, x) for _, v in ipairs(list or {}) do if v == x or v == "*" then return true end end return false end
    local res = c.resource .. (c.subresource and ("/" .. c.subresource) or "")
    return has(r.verbs, c.verb) and has(r.apiGroups, c.group) and has(r.resources, res) and
      (not r.resourceNames or #r.resourceNames == 0 or (c.name and has(r.resourceNames, c.name)))
  end
  local out = {}
  for _, w in ipairs(want) do
    local whole = true
    for _, c in ipairs(M.checks({ w })) do
      local ok = false
      for _, r in ipairs(have or {}) do if grants(r, c) then ok = true break end end
      if not ok then whole = false break end
    end
    if not whole then out[#out + 1] = w end
  end
  return out
end

--- NEEDS[component] → the accesses without which the component stops working (seed 000: a
--- scheduler that cannot bind leaves every new pod Pending), a handful of checks for a quick review.
M.NEEDS = {
  ["kube-scheduler"] = {
    { verb = "list", group = "", resource = "pods" }, { verb = "watch", group = "", resource = "pods" },
    { verb = "get", group = "", resource = "nodes" }, { verb = "create", group = "", resource = "pods", subresource = "binding" },
    { verb = "update", group = "coordination.k8s.io", resource = "leases", name = "kube-scheduler" } },
  ["kube-controller-manager"] = {
    { verb = "list", group = "", resource = "pods" }, { verb = "get", group = "", resource = "secrets" },
    { verb = "create", group = "", resource = "serviceaccounts", subresource = "token" },
    { verb = "update", group = "coordination.k8s.io", resource = "leases", name = "kube-controller-manager" } },
}

--- denied(component, checks) → the descriptions of what the component's user is refused among
--- checks (default: every access its roles grant), {} when nothing is, asked with
--- SubjectAccessReviews as the API server decides them. Raises when the API cannot answer (a review
--- that cannot be asked is not a yes).
function M.denied(component, checks)
  local comp = M.COMPONENTS[component]
  if not comp then error("rbac_policy.denied: no policy for " .. tostring(component), 2) end
  local k8s = require "engine.k8s"
  local out = {}
  local all = checks or {}
  if not checks then
    for _, r in ipairs(comp.roles) do for _, c in ipairs(M.checks(r.rules)) do all[#all + 1] = c end end
  end
  for _, c in ipairs(all) do
    local ok, err, msg = k8s.can({ verb = c.verb, group = c.group, resource = c.resource, subresource = c.subresource,
      name = c.name }, { user = comp.user })
    if ok == nil then error("SubjectAccessReview for " .. comp.user .. ": " .. tostring(msg or err), 0) end
    if not ok then out[#out + 1] = M.describe(c) end
  end
  return out
end

return M
