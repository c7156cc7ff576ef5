-- std.removed_apis: before a minor upgrade, the objects a cluster serves only through API versions
-- the target minor removes (as Talos' upgrade-k8s checks): such objects become unreachable, and
-- the manifests that create them fail, the moment the API server runs the new minor.
-- The table is Kubernetes' deprecation guide, "Removed APIs by release"
-- (https://kubernetes.io/docs/reference/using-api/deprecation-guide/), as of 1.34: 1.33 and 1.34
-- remove no served API. `use` is the version to move to ("" when the API has no successor).
local api = require "engine.k8s.api"
local semver = require "std.semver"

local M = {}

local function gv(group, version, resources, kind_use)
  local out = {}
  for _, r in ipairs(resources) do
    out[#out + 1] = { group = group, version = version, resource = r[1], kind = r[2], use = r[3] or kind_use }
  end
  return out
end

local function join(...)
  local out = {}
  for _, list in ipairs({ ... }) do for _, x in ipairs(list) do out[#out + 1] = x end end
  return out
end

M.REMOVED = {
  [16] = join(
    gv("extensions", "v1beta1", { { "deployments", "Deployment" }, { "daemonsets", "DaemonSet" },
      { "replicasets", "ReplicaSet" } }, "apps/v1"),
    gv("extensions", "v1beta1", { { "networkpolicies", "NetworkPolicy", "networking.k8s.io/v1" },
      { "podsecuritypolicies", "PodSecurityPolicy", "policy/v1beta1" } }),
    gv("apps", "v1beta1", { { "deployments", "Deployment" }, { "statefulsets", "StatefulSet" } }, "apps/v1"),
    gv("apps", "v1beta2", { { "deployments", "Deployment" }, { "statefulsets", "StatefulSet" },
      { "daemonsets", "DaemonSet" }, { "replicasets", "ReplicaSet" } }, "apps/v1")),
  [22] = join(
    gv("admissionregistration.k8s.io", "v1beta1", { { "mutatingwebhookconfigurations", "MutatingWebhookConfiguration" },
      { "validatingwebhookconfigurations", "ValidatingWebhookConfiguration" } }, "admissionregistration.k8s.io/v1"),
    gv("apiextensions.k8s.io", "v1beta1", { { "customresourcedefinitions", "CustomResourceDefinition" } },
      "apiextensions.k8s.io/v1"),
    gv("apiregistration.k8s.io", "v1beta1", { { "apiservices", "APIService" } }, "apiregistration.k8s.io/v1"),
    gv("certificates.k8s.io", "v1beta1", { { "certificatesigningrequests", "CertificateSigningRequest" } },
      "certificates.k8s.io/v1"),
    gv("coordination.k8s.io", "v1beta1", { { "leases", "Lease" } }, "coordination.k8s.io/v1"),
    gv("extensions", "v1beta1", { { "ingresses", "Ingress" } }, "networking.k8s.io/v1"),
    gv("networking.k8s.io", "v1beta1", { { "ingresses", "Ingress" }, { "ingressclasses", "IngressClass" } },
      "networking.k8s.io/v1"),
    gv("rbac.authorization.k8s.io", "v1beta1", { { "clusterroles", "ClusterRole" },
      { "clusterrolebindings", "ClusterRoleBinding" }, { "roles", "Role" }, { "rolebindings", "RoleBinding" } },
      "rbac.authorization.k8s.io/v1"),
    gv("scheduling.k8s.io", "v1beta1", { { "priorityclasses", "PriorityClass" } }, "scheduling.k8s.io/v1"),
    gv("storage.k8s.io", "v1beta1", { { "csidrivers", "CSIDriver" }, { "csinodes", "CSINode" },
      { "storageclasses", "StorageClass" }, { "volumeattachments", "VolumeAttachment" } }, "storage.k8s.io/v1")),
  [25] = join(
    gv("batch", "v1beta1", { { "cronjobs", "CronJob" } }, "batch/v1"),
    gv("discovery.k8s.io", "v1beta1", { { "endpointslices", "EndpointSlice" } }, "discovery.k8s.io/v1"),
    gv("events.k8s.io", "v1beta1", { { "events", "Event" } }, "events.k8s.io/v1"),
    gv("autoscaling", "v2beta1", { { "horizontalpodautoscalers", "HorizontalPodAutoscaler" } }, "autoscaling/v2"),
    gv("policy", "v1beta1", { { "poddisruptionbudgets", "PodDisruptionBudget", "policy/v1" },
      { "podsecuritypolicies", "PodSecurityPolicy", "" } }),
    gv("node.k8s.io", "v1beta1", { { "runtimeclasses", "RuntimeClass" } }, "node.k8s.io/v1")),
  [26] = join(
    gv("flowcontrol.apiserver.k8s.io", "v1beta1", { { "flowschemas", "FlowSchema" },
      { "prioritylevelconfigurations", "PriorityLevelConfiguration" } }, "flowcontrol.apiserver.k8s.io/v1beta3"),
    gv("autoscaling", "v2beta2", { { "horizontalpodautoscalers", "HorizontalPodAutoscaler" } }, "autoscaling/v2")),
  [27] = gv("storage.k8s.io", "v1beta1", { { "csistoragecapacities", "CSIStorageCapacity" } }, "storage.k8s.io/v1"),
  [29] = gv("flowcontrol.apiserver.k8s.io", "v1beta2", { { "flowschemas", "FlowSchema" },
    { "prioritylevelconfigurations", "PriorityLevelConfiguration" } }, "flowcontrol.apiserver.k8s.io/v1"),
  [32] = gv("flowcontrol.apiserver.k8s.io", "v1beta3", { { "flowschemas", "FlowSchema" },
    { "prioritylevelconfigurations", "PriorityLevelConfiguration" } }, "flowcontrol.apiserver.k8s.io/v1"),
}

-- The resources a group/version serves (discovery), or nil when it serves none (404: not served).
local served_cache = {}
local function serves(groupversion)
  if served_cache[groupversion] ~= nil then return served_cache[groupversion] end
  local status, body, msg = api.call("GET", "/apis/" .. groupversion)
  if not status then
    if body == "not found" then served_cache[groupversion] = false return false end
    return nil, body, msg
  end
  local set = {}
  for _, r in ipairs((body or {}).resources or {}) do set[r.name] = true end
  served_cache[groupversion] = set
  return set
end

--- check(from, to) → findings | nil, word, message. One finding per API the minors after `from`
--- up to `to` remove that this cluster serves with objects no other version serves:
--- {api = "policy/v1beta1", resource, kind, removed_in = "1.25", use = "" | "policy/v1", objects =
--- {"ns/name", ...} (at most 20 named), count}. Read-only; yields.
function M.check(from, to)
  local f, t = semver.parse(from), semver.parse(to)
  if not f or not t then error(string.format("removed_apis.check: %s and %s must be versions like 1.33.1", tostring(from), tostring(to)), 2) end
  served_cache = {}
  local findings = {}
  for minor = f.minor + 1, t.minor do
    for _, e in ipairs(M.REMOVED[minor] or {}) do
      local old = e.group .. "/" .. e.version
      local set, err, msg = serves(old)
      if set == nil then return nil, err, string.format("discovery of %s: %s", old, tostring(msg or err)) end
      local elsewhere = e.use ~= "" and serves(e.use)
      if set and set[e.resource] and not (elsewhere and elsewhere[e.resource]) then
        local status, body, lmsg = api.call("GET", "/apis/" .. old .. "/" .. e.resource .. "?limit=500")
        if not status then return nil, body, string.format("listing %s %s: %s", old, e.resource, tostring(lmsg or body)) end
        local items = (body or {}).items or {}
        if #items > 0 then
          local names = {}
          for i, o in ipairs(items) do
            if i > 20 then break end
            local m = o.metadata or {}
            names[#names + 1] = (m.namespace and (m.namespace .. "/") or "") .. tostring(m.name)
          end
          findings[#findings + 1] = { api = old, resource = e.resource, kind = e.kind, removed_in = "1." .. minor,
            use = e.use, objects = names, count = #items }
        end
      end
    end
  end
  return findings
end

--- One line per finding, for a preflight's list.
function M.describe(x)
  return string.format("%d %s (%s %s) served only through %s, which %s removes%s: %s%s", x.count, x.kind,
    x.api, x.resource, x.api, x.removed_in, x.use ~= "" and ("; move them to " .. x.use) or " with no successor",
    table.concat(x.objects, ", "), x.count > #x.objects and ", ..." or "")
end

return M
