-- The control plane's RBAC lost or damaged (seed 000: the scheduler's ClusterRole gone, new pods
-- Pending for two hours). Asks the API, with SubjectAccessReviews, whether system:kube-scheduler
-- and system:kube-controller-manager may do what the bootstrap policy lets them do; restores the
-- missing or damaged ClusterRoles and ClusterRoleBindings from that policy (std.rbac_policy),
-- adding what is missing and removing nothing unless prune=true; asks again; and waits for the
-- pods that were Pending to be scheduled. When the operator's credentials cannot repair RBAC
-- (kubeadm#3308: the kubeadm:cluster-admins binding itself lost), it breaks glass: the leader's
-- super-admin.conf (else admin.conf), read over SSH into memory only, used through a tunnel to the
-- leader's API server, and says so.
local http = require "engine.http"
local k8s = require "engine.k8s"
local ssh = require "engine.ssh"
local time = require "engine.time"
local ops = require "std.ops"
local policy = require "std.rbac_policy"
local groups = require "std.groups"
local kubeadm = require "std.kubeadm"

local function rerun() return false end

-- Seed 002 beside seed 000: the controller's route to the API cut while SSH to the nodes works.
-- nil when the kubeconfig's route answers; else the tunnel to the first control-plane node whose
-- own API server does, with this run's credentials (a tunnel changes no answer, reads or writes).
local function reach_api(p, inv)
  local cps = groups.optional(inv, p.control_plane, "k8s-cp")
  local route, _, why = kubeadm.reach_api(cps)
  if route then return route end
  if why and #cps == 0 then
    fail("%s; with the control-plane nodes in the inventory (group %s) the run tries each one's own API server over SSH",
      tostring(why), p.control_plane)
  elseif why then
    fail("%s", why)
  end
end

local function can_repair()
  for _, n in ipairs({ { "create", "clusterroles" }, { "update", "clusterroles" }, { "create", "clusterrolebindings" },
    { "escalate", "clusterroles" }, { "bind", "clusterroles" } }) do
    local ok, err, msg = k8s.can { verb = n[1], group = "rbac.authorization.k8s.io", resource = n[2] }
    if ok == nil then return false, "cannot ask the API (" .. tostring(msg or err) .. ")" end
    if not ok then return false, "may not " .. n[1] .. " " .. n[2] end
  end
  return true
end

-- The operation for one ClusterRole: it exists and grants every rule of the policy (and, with
-- prune, nothing else).
local function role_op(name, rules, prune)
  return {
    name = "ClusterRole " .. name,
    holds = function()
      local have = k8s.get("clusterroles", name)
      if not have then return false, "missing" end
      local missing = policy.missing_rules(have.rules, rules)
      if #missing > 0 then return false, #missing .. " of its rules missing" end
      if prune and #policy.missing_rules(rules, have.rules) > 0 then return false, "it grants more than the policy" end
      return true
    end,
    apply = function()
      local have, err = k8s.get("clusterroles", name)
      local want = policy.cluster_role(name, rules)
      if not have then
        if err ~= "not found" then error("ClusterRole " .. name .. ": " .. tostring(err), 0) end
        local ok, cerr, cmsg = k8s.create(want)
        if not ok then error("creating ClusterRole " .. name .. ": " .. tostring(cmsg or cerr), 0) end
        if not http.dry_run() then log.warn("ClusterRole restored", { role = name, rules = #rules }) end
        return
      end
      local missing = policy.missing_rules(have.rules, rules)
      have.rules = prune and want.rules or have.rules or {}
      if not prune then for _, r in ipairs(missing) do have.rules[#have.rules + 1] = policy.cluster_role(name, { r }).rules[1] end end
      local ok, uerr, umsg = k8s.update(have)
      if not ok then error("updating ClusterRole " .. name .. ": " .. tostring(umsg or uerr), 0) end
      if not http.dry_run() then log.warn("ClusterRole repaired", { role = name, added = #missing, pruned = prune }) end
    end,
  }
end

-- The operation for one ClusterRoleBinding: it binds the role to the subject.
local function binding_op(name, role, subject)
  local function binds(b)
    if not b or (b.roleRef or {}).name ~= role then return false end
    for _, s in ipairs(b.subjects or {}) do if s.kind == subject.kind and s.name == subject.name then return true end end
    return false
  end
  return {
    name = "ClusterRoleBinding " .. name,
    holds = function()
      local b = k8s.get("clusterrolebindings", name)
      return binds(b), b and ("it does not bind " .. subject.kind .. " " .. subject.name .. " to " .. role) or "missing"
    end,
    apply = function()
      local b = k8s.get("clusterrolebindings", name)
      if b and (b.roleRef or {}).name ~= role then
        -- roleRef cannot change: the binding is made again.
        local ok, derr, dmsg = k8s.delete("clusterrolebindings", name)
        if not ok then error("deleting ClusterRoleBinding " .. name .. ": " .. tostring(dmsg or derr), 0) end
        b = nil
      end
      if not b then
        local ok, cerr, cmsg = k8s.create(policy.cluster_role_binding(name, role, subject))
        if not ok then error("creating ClusterRoleBinding " .. name .. ": " .. tostring(cmsg or cerr), 0) end
      else
        b.subjects = b.subjects or {}
        b.subjects[#b.subjects + 1] = { apiGroup = "rbac.authorization.k8s.io", kind = subject.kind, name = subject.name }
        local ok, uerr, umsg = k8s.update(b)
        if not ok then error("updating ClusterRoleBinding " .. name .. ": " .. tostring(umsg or uerr), 0) end
      end
      if not http.dry_run() then log.warn("ClusterRoleBinding restored", { binding = name, role = role, subject = subject.name }) end
    end,
  }
end

local function pending_pods()
  local pods = k8s.list("pods", { all_namespaces = true }) or {}
  local out = {}
  for _, p in ipairs(pods) do
    if not (p.spec or {}).nodeName and ((p.status or {}).phase or "Pending") == "Pending" then
      out[#out + 1] = p.metadata.namespace .. "/" .. p.metadata.name
    end
  end
  return out
end

return runbook {
  name = "recover-rbac",
  summary = "Restore the scheduler's and controller-manager's RBAC from the bootstrap policy, checked by SubjectAccessReviews",
  params = {
    components = { type = "list", default = { "kube-scheduler", "kube-controller-manager" },
      help = "the components whose RBAC is checked and restored" },
    prune = { type = "boolean", default = false, help = "also remove rules the policy does not grant" },
    break_glass = { type = "boolean", default = true,
      help = "when this run's credentials cannot repair RBAC, use the leader's super-admin.conf over SSH" },
    leader = { type = "string", default = "k8s-cp-leader", help = "inventory group of the node whose credentials break glass (an inventory without the group: the first control-plane host)" },
    control_plane = { type = "string", default = "k8s-cp" },
    pending_timeout = { type = "duration", default = "2m", help = "for the pods Pending before to be scheduled" },
  },
  ---@param p params.recover_rbac
  ---@param inv engine.Inventory
  run = function(p, inv)
    for _, c in ipairs(p.components) do
      if not policy.COMPONENTS[c] then fail("components: no policy for %s (known: kube-scheduler, kube-controller-manager)", c) end
    end
    -- Held to the run's end: the API through a control-plane node when the route to it is cut.
    local route <close> = reach_api(p, inv)

    -- 1. What is wrong, asked as the components themselves would be refused.
    local found = step("review", function()
      local out = { denied = {}, pending = pending_pods() }
      for _, c in ipairs(p.components) do out.denied[c] = policy.denied(c) end
      return out
    end, { probe = rerun })
    local broken = false
    for _, c in ipairs(p.components) do
      local denied = found.denied[c] or {}
      if #denied > 0 then
        broken = true
        print(string.format("%s (%s) is refused %d of what the bootstrap policy grants, e.g. %s", c,
          policy.COMPONENTS[c].user, #denied, table.concat({ table.unpack(denied, 1, 4) }, ", ")))
        log.warn("RBAC missing", { component = c, denied = denied })
      else
        print(c .. ": every access of the bootstrap policy is allowed")
      end
    end
    if #found.pending > 0 then print(#found.pending .. " pod(s) Pending without a node: " .. table.concat(found.pending, ", ")) end

    -- 2. Who repairs it: this run's credentials, else (break glass) the leader's.
    local objects = {}
    for _, c in ipairs(p.components) do
      local comp = policy.COMPONENTS[c]
      for _, r in ipairs(comp.roles) do
        objects[#objects + 1] = role_op(r.role, r.rules, p.prune)
        objects[#objects + 1] = binding_op(r.binding, r.role, { kind = "User", name = comp.user })
      end
    end
    local ca = policy.CLUSTER_ADMINS
    objects[#objects + 1] = binding_op(ca.binding, ca.role, { kind = "Group", name = ca.group })
    local to_restore = false
    for _, op in ipairs(objects) do if not op.holds() then to_restore = true end end
    if not to_restore and not broken then
      print("\nNothing to restore: every role and binding is as the policy has them.")
      return
    end
    local ok, why = can_repair()
    local tunnel
    if not ok then
      if not p.break_glass then fail("this run's credentials cannot repair RBAC (%s); break_glass=false", why) end
      local leader = groups.optional(inv, p.leader, "k8s-cp-leader")[1] or inv:hosts(p.control_plane)[1]
      if not leader then fail("break glass: no host in %s or %s", p.leader, p.control_plane) end
      local conf = leader:exec("cat /etc/kubernetes/super-admin.conf 2>/dev/null || cat /etc/kubernetes/admin.conf",
        { sudo = true, read_only = true })
      if not conf or conf.code ~= 0 or conf.stdout == "" then fail("break glass: cannot read %s's super-admin.conf or admin.conf", leader.name) end
      log.secret(conf.stdout)
      local addr = leader.vars.apiserver_address or leader.vars.ansible_host or leader.name
      local t, terr, tmsg = ssh.tunnel(leader, addr, 6443)
      if not t then fail("break glass: a tunnel to %s:6443 through %s: %s", addr, leader.name, tostring(tmsg or terr)) end
      tunnel = t
      k8s.configure { kubeconfig_data = conf.stdout, server = "https://127.0.0.1:" .. t.port, tls_server_name = "kubernetes" }
      local msg = string.format("BREAK GLASS: this run's credentials cannot repair RBAC (%s); using %s's " ..
        "/etc/kubernetes/super-admin.conf (held in memory, never written here) through an SSH tunnel to its API server", why, leader.name)
      log.warn(msg, { node = leader.name })
      print(msg)
    end

    -- 3. Restore, each object a journaled operation that asks the API first.
    for _, op in ipairs(objects) do ops.step(nil, op) end

    -- 4. Asked again: every access allowed.
    step("verify", function()
      if http.dry_run() then return end
      local bad = {}
      for _, c in ipairs(p.components) do
        local denied = policy.denied(c)
        if #denied > 0 then bad[#bad + 1] = c .. " still refused: " .. table.concat(denied, ", ") end
      end
      if #bad > 0 then error(table.concat(bad, "; "), 0) end
    end, { probe = rerun })

    -- 5. The pods that waited get scheduled.
    if #found.pending > 0 and not http.dry_run() then
      local deadline = time.monotonic() + p.pending_timeout
      local left
      repeat
        left = {}
        local now = {}
        for _, x in ipairs(pending_pods()) do now[x] = true end
        for _, x in ipairs(found.pending) do if now[x] then left[#left + 1] = x end end
        if #left == 0 then break end
        sleep(1)
      until time.monotonic() > deadline
      if #left > 0 then fail("RBAC restored, but %d pod(s) are still Pending after %gs: %s", #left, p.pending_timeout, table.concat(left, ", ")) end
      print(string.format("The %d pod(s) that were Pending are scheduled.", #found.pending))
    end
    if tunnel then tunnel:close() end
    print(http.dry_run() and "\nDry run: nothing was changed." or "\nRBAC restored: every access of the bootstrap policy is allowed.")
  end,
}
