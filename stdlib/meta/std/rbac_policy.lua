---@meta std.rbac_policy
-- LuaCATS definitions for require "std.rbac_policy": the control plane's own RBAC as the API
-- server's bootstrap policy defines it (kubernetes/kubernetes bootstrappolicy testdata), as data.

---@class std.rbac_policy.Rule
---@field apiGroups string[]
---@field resources string[]
---@field verbs string[]
---@field resourceNames? string[]

---@class std.rbac_policy.Check
---@field verb string
---@field group string
---@field resource string
---@field subresource? string
---@field name? string

---@class std.rbac_policy
local policy = {}

--- COMPONENTS["kube-scheduler"|"kube-controller-manager"] = {user, roles = {{role, rules, binding}}}
---@type table<string, {user: string, roles: {role: string, rules: std.rbac_policy.Rule[], binding: string}[]}>
policy.COMPONENTS = {}
--- kubeadm's binding of admin.conf's group to cluster-admin.
policy.CLUSTER_ADMINS = { binding = "kubeadm:cluster-admins", role = "cluster-admin", group = "kubeadm:cluster-admins" }

--- The ClusterRole object, as the bootstrap policy writes it.
---@param name string
---@param rules table[]
---@return table
function policy.cluster_role(name, rules) end

---@class std.rbac_policy.ClusterRoleBindingSubject
---@field kind "User"|"Group"
---@field name string

--- The ClusterRoleBinding object.
---@param name string
---@param role string
---@param subject std.rbac_policy.ClusterRoleBindingSubject
---@return table
function policy.cluster_role_binding(name, role, subject) end
--- Every verb × group × resource × name the rules grant: what SubjectAccessReviews ask.
---@param rules table[]
---@return std.rbac_policy.Check[]
function policy.checks(rules) end
--- "create pods/binding", "get leases.coordination.k8s.io kube-scheduler".
---@param check table
---@return string
function policy.describe(check) end
--- The rules of want that no rule of have grants whole.
---@param have table[]
---@param want table[]
---@return std.rbac_policy.Rule[]
function policy.missing_rules(have, want) end

--- Per component, the accesses it cannot work without (a quick review; doctor.lua asks these).
---@type table<string, std.rbac_policy.Check[]>
policy.NEEDS = {}
--- What the component's user is refused among checks (default: every access its roles grant),
--- asked with SubjectAccessReviews; raises when the API cannot answer. Yields.
---@param component "kube-scheduler"|"kube-controller-manager"
---@param checks? std.rbac_policy.Check[]
---@return string[]
function policy.denied(component, checks) end

return policy
