-- k8s.drain_plan / k8s.drain (installed into engine.k8s by k8s.lua): kubectl drain's semantics
-- through the Eviction API, the waits on watches (a PDB's refusal retried when the PDB allows again,
-- an evicted pod seen gone when it goes) rather than kubectl's fixed sleeps.
local api = require "engine.k8s.api"
local check = require "engine.check"
local fleet = require "engine.fleet"
local http = require "engine.http"
local time = require "engine.time"

return function(M, node_name, whole_seconds)
  local function controller_of(pod)
    for _, o in ipairs(pod.metadata.ownerReferences or {}) do
      if o.controller then return o end
    end
    return nil
  end

  local function has_emptydir(pod)
    for _, v in ipairs((pod.spec or {}).volumes or {}) do
      if v.emptyDir then return true end
    end
    return false
  end

  local function pod_id(p) return p.metadata.namespace .. "/" .. p.metadata.name end

  local function matches_selector(sel, labels)
    if not sel then return false end
    labels = labels or {}
    for k, v in pairs(sel.matchLabels or {}) do
      if labels[k] ~= v then return false end
    end
    for _, e in ipairs(sel.matchExpressions or {}) do
      local val, found = labels[e.key], false
      for _, x in ipairs(e.values or {}) do if x == val then found = true end end
      if (e.operator == "In" and not found) or (e.operator == "NotIn" and found)
        or (e.operator == "Exists" and val == nil) or (e.operator == "DoesNotExist" and val ~= nil) then
        return false
      end
    end
    return true
  end

  -- The PDBs that cover a pod.
  local function pdbs_for(pod, all)
    local out = {}
    for _, b in ipairs(all) do
      if b.metadata.namespace == pod.metadata.namespace and matches_selector((b.spec or {}).selector, pod.metadata.labels) then
        out[#out + 1] = b
      end
    end
    return out
  end

  --- drain_plan(node, {ignore_daemonsets, delete_emptydir, force}) → plan (drain's options are accepted too)
  --- plan.evict, plan.skip, plan.refuse: lists of {pod = "ns/name", reason}; plan.blocking: PDBs that
  --- would refuse an eviction now ({pdb = "ns/name", disruptions_allowed, pods}). Evicts nothing.
  local DRAIN_OPTIONS = { "ignore_daemonsets", "delete_emptydir", "force", "grace_period", "timeout", "retry_interval",
    "poll_interval", "disable_eviction" }

  function M.drain_plan(node, opts)
    node = node_name(node, "k8s.drain_plan")
    opts = check.options(opts, DRAIN_OPTIONS, "k8s.drain_plan")
    local pods, err, msg = M.list("pods", { all_namespaces = true, field_selector = "spec.nodeName=" .. node })
    if not pods then return nil, err, msg end
    local pdbs = M.list("poddisruptionbudgets", { all_namespaces = true }) or {}
    local plan = { evict = {}, skip = {}, refuse = {}, blocking = {}, pods = {} }
    local blocking = {}
    for _, p in ipairs(pods) do
      local id = pod_id(p)
      local owner = controller_of(p)
      local phase = (p.status or {}).phase
      local annotations = p.metadata.annotations or {}
      if annotations["kubernetes.io/config.mirror"] then
        plan.skip[#plan.skip + 1] = { pod = id, reason = "mirror (static) pod" }
      elseif p.metadata.deletionTimestamp then
        plan.skip[#plan.skip + 1] = { pod = id, reason = "already terminating", since = p.metadata.deletionTimestamp }
      elseif owner and owner.kind == "DaemonSet" then
        if opts.ignore_daemonsets then
          plan.skip[#plan.skip + 1] = { pod = id, reason = "DaemonSet-managed (ignored)" }
        else
          plan.refuse[#plan.refuse + 1] = { pod = id, reason = "DaemonSet-managed: set ignore_daemonsets" }
        end
      elseif not owner and phase ~= "Succeeded" and phase ~= "Failed" and not opts.force then
        plan.refuse[#plan.refuse + 1] = { pod = id, reason = "not managed by a controller: set force to delete it" }
      elseif has_emptydir(p) and not opts.delete_emptydir then
        plan.refuse[#plan.refuse + 1] = { pod = id, reason = "uses emptyDir (its data is lost): set delete_emptydir" }
      else
        plan.evict[#plan.evict + 1] = { pod = id, reason = owner and owner.kind or "unmanaged (force)" }
        plan.pods[#plan.pods + 1] = p
        for _, b in ipairs(pdbs_for(p, pdbs)) do
          local allowed = ((b.status or {}).disruptionsAllowed) or 0
          if allowed < 1 then
            local key = b.metadata.namespace .. "/" .. b.metadata.name
            blocking[key] = blocking[key] or { pdb = key, disruptions_allowed = allowed, pods = {} }
            table.insert(blocking[key].pods, id)
          end
        end
      end
    end
    for _, b in pairs(blocking) do plan.blocking[#plan.blocking + 1] = b end
    table.sort(plan.blocking, function(a, b) return a.pdb < b.pdb end)
    return plan
  end

  -- After a PDB refused p's eviction: returns as soon as a PDB covering p allows a disruption (a
  -- watch sees the replacement pod become ready) or after interval, whichever comes first. kubectl
  -- sleeps its fixed 5 s instead, once per refusal: a rollout of many nodes under tight PDBs pays
  -- it on every node. Without the right to list or watch PDBs this is kubectl's sleep.
  local function await_disruption(p, interval)
    local deadline = time.monotonic() + interval
    local ns = p.metadata.namespace
    local function allows(b) return ((b.status or {}).disruptionsAllowed or 0) >= 1 and #pdbs_for(p, { b }) > 0 end
    local items, rv = M.list("poddisruptionbudgets", { namespace = ns })
    if not items then sleep(interval); return end
    for _, b in ipairs(items) do if allows(b) then return end end
    local w = M.watch("poddisruptionbudgets", { namespace = ns, resource_version = rv, timeout = math.ceil(interval) })
    if not w then sleep(interval); return end
    while true do
      local left = deadline - time.monotonic()
      if left <= 0 then break end
      local typ, o = w:next(left)
      if not typ then
        if o ~= "timeout" then sleep(math.max(0, deadline - time.monotonic())) end  -- the watch ended early
        break
      end
      if (typ == "DELETED" and #pdbs_for(p, { o }) > 0) or (typ ~= "DELETED" and allows(o)) then break end
    end
    w:close()
  end

  -- Until the evicted pod is gone (404, or a new pod under its name): a watch on its name answers
  -- when the kubelet removes it; poll_interval is the pace only when the watch cannot be had.
  local function await_gone(ns, name, uid, opts)
    while true do
      local cur, err = M.get("pods", name, { namespace = ns })
      if not cur and err == "not found" then return true end
      if cur and cur.metadata.uid ~= uid then return true end  -- recreated under the same name
      local w = cur and M.watch("pods", { namespace = ns, field_selector = "metadata.name=" .. name,
        resource_version = cur.metadata.resourceVersion, timeout = 60 })
      if not w then
        sleep(opts.poll_interval)
      else
        while true do
          local typ, o = w:next(60)
          if not typ then break end  -- timed out, closed or expired: ask again
          if typ == "DELETED" or o.metadata.uid ~= uid then w:close(); return true end
        end
        w:close()
      end
    end
  end

  -- Evicts one pod with kubectl's rules, then waits until it is gone (404, or a new pod with its name).
  local function evict_one(p, opts)
    local ns, name, uid = p.metadata.namespace, p.metadata.name, p.metadata.uid
    local path = "/api/v1/namespaces/" .. http.path_escape(ns) .. "/pods/" .. http.path_escape(name)
    while true do
      local status, body, msg
      if opts.disable_eviction then
        local del = { kind = "DeleteOptions", apiVersion = "v1", gracePeriodSeconds = opts.grace_period }
        status, body, msg = api.call("DELETE", path, del, { retry = false })
      else
        local ev = { apiVersion = "policy/v1", kind = "Eviction", metadata = { name = name, namespace = ns },
          deleteOptions = opts.grace_period and { gracePeriodSeconds = opts.grace_period } or nil }
        status, body, msg = api.call("POST", path .. "/eviction", ev, { retry = false })
      end
      if status or body == "not found" then break end
      if body == "too many requests" then
        log.info("eviction refused by a PodDisruptionBudget, retrying", { pod = ns .. "/" .. name, within = opts.retry_interval })
        await_disruption(p, opts.retry_interval)
      else
        -- 500 (several PDBs cover the pod), 403, anything else: kubectl gives up on it too.
        error(string.format("evicting %s/%s: %s: %s", ns, name, body, msg), 0)
      end
    end
    return await_gone(ns, name, uid, opts)
  end

  --- drain(node, {ignore_daemonsets, delete_emptydir, force, grace_period, timeout, retry_interval,
  ---   disable_eviction}) → {evicted = n, skipped = {...}} | nil, err, message, details
  --- kubectl drain's semantics: cordon; refuse DaemonSet pods (unless ignore_daemonsets), unmanaged
  --- pods (unless force) and emptyDir pods (unless delete_emptydir) before evicting anything; evict the
  --- rest through the Eviction API, retrying a PDB's refusal every retry_interval. On the timeout the
  --- node stays cordoned and the error names the pods still there and the PDBs holding them.
  local drain  -- below: M.drain records its span on the run's timeline around it

  function M.drain(node, opts)
    -- Checked here, where the runbook called: a misuse names the runbook's line.
    local name = node_name(node, "k8s.drain")
    local given = check.options(opts, DRAIN_OPTIONS, "k8s.drain")
    opts = {}  -- the caller's table stays as it was
    for k, v in pairs(given) do opts[k] = v end
    opts.retry_interval = check.seconds(given.retry_interval, "k8s.drain", "retry_interval") or 5
    opts.poll_interval = check.seconds(given.poll_interval, "k8s.drain", "poll_interval") or 1
    opts.grace_period = whole_seconds(given.grace_period, "k8s.drain", "grace_period")
    local timeout_s = check.seconds(given.timeout, "k8s.drain", "timeout") or 600
    local t0 = log.clock()
    local r = table.pack(drain(name, opts, timeout_s))
    log.span("drain", name, t0, r[1] and "ok" or tostring(r[2]))
    return table.unpack(r, 1, r.n)
  end

  drain = function(node, opts, timeout_s)
    local ok, err, msg = M.cordon(node)
    if not ok then return nil, err, msg end
    local plan, e2, m2 = M.drain_plan(node, opts)
    if not plan then return nil, e2, m2 end
    if #plan.refuse > 0 then
      local lines = {}
      for _, r in ipairs(plan.refuse) do lines[#lines + 1] = r.pod .. " (" .. r.reason .. ")" end
      return nil, "refused", "cannot drain " .. node .. ": " .. table.concat(lines, "; "), plan
    end
    if api.dry_run() then
      for _, e in ipairs(plan.evict) do log.info("dry-run: would evict", { pod = e.pod }) end
      return { evicted = 0, planned = #plan.evict, skipped = plan.skip }
    end
    local t0 = time.monotonic()
    local work = {}
    for _, p in ipairs(plan.pods) do work[#work + 1] = { name = pod_id(p), pod = p } end
    local res = timeout(timeout_s, fleet.each, work, { at_once = math.max(1, #work), max_failures = #work },
      function(w) return evict_one(w.pod, opts) end)
    if not res then
      -- Still there, and why: the PDBs that cover them now.
      local left = M.drain_plan(node, opts) or { evict = {}, blocking = {} }
      local pods, holders = {}, {}
      for _, e in ipairs(left.evict) do pods[#pods + 1] = e.pod end
      -- Evicted but not gone: a pod stuck Terminating (a finalizer, a long grace period, a dead kubelet).
      for _, s in ipairs(left.skip or {}) do
        if s.reason == "already terminating" then pods[#pods + 1] = s.pod .. " (terminating since " .. tostring(s.since) .. ")" end
      end
      for _, b in ipairs(left.blocking) do
        holders[#holders + 1] = string.format("%s (%d disruptions allowed)", b.pdb, b.disruptions_allowed)
      end
      return nil, "timeout", string.format("drain of %s timed out after %gs; the node stays cordoned; pods still there: %s; held by: %s",
        node, timeout_s, #pods > 0 and table.concat(pods, ", ") or "none", #holders > 0 and table.concat(holders, ", ") or "no PDB blocks them now"),
        { pods = pods, pdbs = left.blocking }
    end
    if res.failed > 0 then
      local errs = {}
      for _, r in ipairs(res) do if r.status == "failed" then errs[#errs + 1] = r.error end end
      return nil, "failed", table.concat(errs, "; ")
    end
    log.info("drained", { node = node, evicted = #plan.pods, seconds = string.format("%.1f", time.monotonic() - t0) })
    return { evicted = #plan.pods, skipped = plan.skip }
  end
end
