-- std.gates: checks a runbook runs before it changes something, and between hosts in fleet.each.
-- A gate returns true, or nil, word, message (fleet.each logs the message when it holds admission).
-- Gates fail closed: when they cannot tell, the answer is no.
local check = require "engine.check"
local prometheus = require "engine.prometheus"
local k8s = require "engine.k8s"

local M = {}

local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

--- no_firing_alerts{ignore = {"Watchdog"}, allow_pending = true, url} → true | nil, "firing"|"unknown", message
--- Halts (nil) when an alert not ignored is firing (or pending, unless allow_pending), and also when
--- Prometheus cannot be reached or answers something malformed, as kured does: no news is not good news.
function M.no_firing_alerts(opts)
  opts = check.options(opts, { "ignore", "allow_pending", "url" }, "gates.no_firing_alerts")
  local ignore = set_of(opts.ignore)
  local alerts, err, msg = prometheus.alerts { url = opts.url }
  if not alerts then
    return nil, "unknown", string.format("cannot tell whether alerts fire (%s: %s); halting", err, tostring(msg))
  end
  local firing = {}
  for _, a in ipairs(alerts) do
    if a.state ~= "firing" and a.state ~= "pending" and a.state ~= "inactive" then
      return nil, "unknown", string.format("cannot tell whether alerts fire (alert %s has state %s); halting",
        tostring(a.name), a.state == nil and "none" or string.format("%q", tostring(a.state)))
    end
    local counts = a.state == "firing" or (a.state == "pending" and not opts.allow_pending)
    if counts and not ignore[a.name] then firing[#firing + 1] = a.name .. " (" .. a.state .. ")" end
  end
  if #firing > 0 then
    table.sort(firing)
    return nil, "firing", "alerts firing: " .. table.concat(firing, ", ")
  end
  return true
end

-- kind → {plural, group}: what workloads_ready understands, with kubectl's short names.
local KINDS = {
  deployment = "deployments.apps", deployments = "deployments.apps", deploy = "deployments.apps",
  statefulset = "statefulsets.apps", statefulsets = "statefulsets.apps", sts = "statefulsets.apps",
  daemonset = "daemonsets.apps", daemonsets = "daemonsets.apps", ds = "daemonsets.apps",
}

-- "NS/KIND/NAME" or "NS/KIND?SELECTOR" ("*" as NS: every namespace) → {namespace, kind, name, selector}
local function target_of(t)
  if type(t) == "table" then return t end
  local ns, kind, rest = tostring(t):match("^([^/]+)/([%a]+)(.*)$")
  local name = rest and rest:match("^/([%w%.%-]+)$")
  local selector = rest and rest:match("^%?(.+)$")
  if not ns or not (name or selector) then
    error(string.format("gates.workloads_ready: %q is not NAMESPACE/KIND/NAME or NAMESPACE/KIND?SELECTOR "
      .. "(e.g. shop/deployment/web, */daemonset?app=agent)", tostring(t)), 3)
  end
  return { namespace = ns, kind = kind, name = name, selector = selector }
end

-- Why the workload is not all ready yet, or nil: kubectl rollout status's reading of each kind.
local function unready(kind, o)
  local spec, st, meta = o.spec or {}, o.status or {}, o.metadata or {}
  if (st.observedGeneration or 0) < (meta.generation or 0) then return "its controller has not seen the latest spec" end
  if kind == "daemonsets.apps" then
    local want = st.desiredNumberScheduled or 0
    if (st.updatedNumberScheduled or 0) < want then return string.format("%d of %d pods updated", st.updatedNumberScheduled or 0, want) end
    if (st.numberReady or 0) < want then return string.format("%d of %d pods ready", st.numberReady or 0, want) end
    return nil
  end
  local want = spec.replicas or 1
  if kind == "deployments.apps" then
    if (st.updatedReplicas or 0) < want then return string.format("%d of %d replicas updated", st.updatedReplicas or 0, want) end
    if (st.replicas or 0) > (st.updatedReplicas or 0) then
      return string.format("%d old replicas pending termination", st.replicas - (st.updatedReplicas or 0))
    end
    if (st.availableReplicas or 0) < want then return string.format("%d of %d replicas available", st.availableReplicas or 0, want) end
    return nil
  end
  if (st.readyReplicas or 0) < want then return string.format("%d of %d replicas ready", st.readyReplicas or 0, want) end
  if st.updateRevision and st.currentRevision and st.updateRevision ~= st.currentRevision and (st.updatedReplicas or 0) < want then
    return string.format("%d of %d replicas at the new revision", st.updatedReplicas or 0, want)
  end
  return nil
end

--- workloads_ready(targets) → true | nil, "not ready"|"not found"|the API's word, message
--- Every Deployment, StatefulSet and DaemonSet named ("shop/deployment/web") or selected
--- ("shop/statefulset?app=db", "*" for every namespace) has all its replicas ready at its latest
--- spec, as `kubectl rollout status` reads them: the gate between two drains that keeps a rollout
--- from taking the next node while an application is still short. Fails closed.
function M.workloads_ready(targets)
  if type(targets) ~= "table" then error("gates.workloads_ready: targets must be a list", 2) end
  local short = {}
  for _, raw in ipairs(targets) do
    local t = target_of(raw)
    local kind = KINDS[tostring(t.kind):lower()]
    if not kind then
      error(string.format("gates.workloads_ready: kind %q is not a Deployment, StatefulSet or DaemonSet", tostring(t.kind)), 2)
    end
    local objs
    if t.name then
      local o, err, msg = k8s.get(kind, t.name, { namespace = t.namespace })
      if not o then
        if err == "not found" then return nil, "not found", string.format("%s/%s/%s: not found", t.namespace, t.kind, t.name) end
        return nil, err, string.format("cannot read %s/%s/%s: %s", t.namespace, t.kind, t.name, tostring(msg or err))
      end
      objs = { o }
    else
      local all = t.namespace == "*"
      local err, msg
      objs, err, msg = k8s.list(kind, { namespace = not all and t.namespace or nil, all_namespaces = all or nil,
        label_selector = t.selector })
      if not objs then return nil, err, string.format("cannot list %s: %s", kind, tostring(msg or err)) end
    end
    for _, o in ipairs(objs) do
      local why = unready(kind, o)
      if why then short[#short + 1] = string.format("%s/%s/%s: %s", o.metadata.namespace, kind:match("^(%a-)s?%.") , o.metadata.name, why) end
    end
  end
  if #short > 0 then return nil, "not ready", "workloads not ready: " .. table.concat(short, "; ") end
  return true
end

return M
