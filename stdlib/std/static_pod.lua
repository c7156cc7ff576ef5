-- std.static_pod: a static pod's container as the node's runtime sees it (crictl, so it works when
-- the API does not: seed 001's expired certificates), and the restart kubeadm documents for a
-- static pod after `kubeadm certs renew`: move the manifest out of the manifests directory, wait
-- until the kubelet has stopped the pod, move it back, wait until a new container runs. kubectl
-- cannot restart a static pod (deleting the mirror pod does nothing to the container).
local check = require "engine.check"
local http = require "engine.http"
local inventory = require "engine.inventory"
local remote = require "std.remote"
local time = require "engine.time"

local M = {}

M.MANIFESTS = "/etc/kubernetes/manifests"

--- container(host, name) → {id, created, created_at, image} of the running container of static pod
--- `name` (created: whole epoch seconds, the node's clock; created_at: the same with its fraction, for
--- comparisons within one second), or nil when none runs. Read with crictl.
function M.container(h, name)
  h = inventory.host(h, "static_pod.container")
  local r = remote.must(h, "crictl ps --state running --name " .. remote.quote("^" .. name .. "$") .. " -o json",
    { read_only = true, what = "crictl ps (the running " .. name .. " container)", timeout = 60 })
  local doc, err, why = http.json_decode(r.stdout)
  if type(doc) ~= "table" then error(string.format("%s: crictl ps -o json: %s %s", h.name, tostring(err), tostring(why or "")), 0) end
  local best
  for _, c in ipairs(doc.containers or {}) do
    local labels = c.labels or {}
    local cname = (c.metadata or {}).name
    if cname == name and (labels["io.kubernetes.pod.namespace"] or "kube-system") == "kube-system" then
      local created_at = (tonumber(c.createdAt) or 0) / 1e9
      if not best or created_at > best.created_at then
        best = { id = c.id, created = math.floor(created_at), created_at = created_at, image = type(c.image) == "table" and c.image.image or c.imageRef }
      end
    end
  end
  return best
end

-- A bounded wait on a node fact, polling every half second (one crictl call each).
local function wait_until(what, timeout, fn)
  local deadline = time.monotonic() + timeout
  while true do
    local v = fn()
    if v then return v end
    if time.monotonic() > deadline then return nil, string.format("%s: not within %ds", what, timeout) end
    sleep(0.5)
  end
end

--- new_container(host, name, since, timeout) → container | nil, why: waits until a container of
--- static pod `name` created at `since` or later (the node's clock, seconds with a fraction) runs:
--- the kubelet's answer to a manifest changed or put back at that time.
function M.new_container(h, name, since, timeout)
  h = inventory.host(h, "static_pod.new_container")
  return wait_until("a new " .. name .. " container", timeout or 120, function()
    local c = M.container(h, name)
    return c and c.created_at >= since and c
  end)
end

--- park(host, name, parked, timeout) → true | nil, why: manifests/NAME.yaml moved to `parked` (a
--- file path outside manifests/; its directory made 0700) when it is there, then waited for until
--- no NAME container runs. A manifest already parked is left there. Under --dry-run: the command only.
function M.park(h, name, parked, timeout)
  h = inventory.host(h, "static_pod.park")
  if type(parked) ~= "string" or not parked:match("^/") or parked:find(M.MANIFESTS .. "/", 1, true) == 1 then
    error("static_pod.park: parked must be an absolute path outside " .. M.MANIFESTS, 2)
  end
  local file, dir = M.MANIFESTS .. "/" .. name .. ".yaml", parked:match("^(.*)/[^/]+$")
  local q = remote.quote
  remote.must(h, "mkdir -p " .. q(dir) .. " && chmod 0700 " .. q(dir) .. " && if [ -f " .. q(file) .. " ]; then mv -f " ..
    q(file) .. " " .. q(parked) .. "; fi", { what = "moving " .. file .. " to " .. parked })
  if http.dry_run() then return true end
  return wait_until("the kubelet stopping " .. name, math.ceil(check.seconds(timeout, "static_pod.park", "timeout") or 120),
    function() return M.container(h, name) == nil end)
end

--- restart(host, name, {parking = dir, timeout = 120}) → {before, after} | nil, why. Moves
--- NAME.yaml to the parking directory (outside manifests/: the kubelet reads every file there),
--- waits until no NAME container runs, moves it back, waits until a container created after the
--- move back runs. A manifest found parked (a run killed half way) is moved back, not lost.
--- Under --dry-run: the commands, nothing done.
function M.restart(h, name, opts)
  h = inventory.host(h, "static_pod.restart")
  opts = check.options(opts, { "parking", "timeout" }, "static_pod.restart")
  if type(opts.parking) ~= "string" or not opts.parking:match("^/") then
    error("static_pod.restart: parking must be an absolute directory outside " .. M.MANIFESTS, 2)
  end
  local timeout = check.seconds(opts.timeout, "static_pod.restart", "timeout") or 120
  local file = M.MANIFESTS .. "/" .. name .. ".yaml"
  local parked = opts.parking .. "/" .. name .. ".yaml"
  local q = remote.quote
  if http.dry_run() then
    log.info("dry-run: would restart the static pod", { node = h.name,
      command = string.format("mv %s %s; (wait until no %s container runs); mv %s %s; (wait for a new one)",
        file, parked, name, parked, file) })
    return { dry_run = true }
  end
  local before = M.container(h, name)
  -- One command decides where the manifest is: in manifests/ (move it out), parked by a run that
  -- was killed (leave it there), or nowhere (a node without this static pod: an error).
  local r = remote.must(h, "mkdir -p -m 0700 " .. q(opts.parking) .. " && if [ -f " .. q(file) .. " ]; then mv -f " ..
    q(file) .. " " .. q(parked) .. " && echo moved; elif [ -f " .. q(parked) .. " ]; then echo parked; else echo missing; fi",
    { what = "moving " .. file .. " out of the manifests directory" })
  local where = r.stdout:match("%a+")
  if where == "missing" then return nil, string.format("no %s (nor %s): %s is not a static pod here", file, parked, name) end
  local gone, why = wait_until("the kubelet stopping " .. name, timeout, function() return M.container(h, name) == nil end)
  if not gone then
    remote.must(h, "mv -f " .. q(parked) .. " " .. q(file), { what = "putting " .. file .. " back" })
    return nil, why
  end
  local back = remote.must(h, "mv -f " .. q(parked) .. " " .. q(file) .. " && date +%s",
    { what = "putting " .. file .. " back" })
  local since = tonumber(back.stdout:match("%d+")) or 0
  local after, why2 = M.new_container(h, name, since - 1, timeout)
  if not after then return nil, why2 end
  log.info("static pod restarted", { node = h.name, pod = name, container = after.id })
  return { before = before, after = after }
end

return M
