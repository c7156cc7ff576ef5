-- std.kubeadm: the operations of a kubeadm node (std.ops): its apt source at a minor, packages at
-- a version, kubeadm upgrade, the kubelet restarted at a version, static pods at a version. Each
-- asks std.facts whether the node is already so before changing anything. The reads this module
-- used to hold are std.facts now; the names below stay as aliases for runbooks written before.
local check = require "engine.check"
local facts = require "std.facts"
local http = require "engine.http"
local inventory = require "engine.inventory"
local k8s = require "engine.k8s"
local remote = require "std.remote"
local semver = require "std.semver"
local ssh = require "engine.ssh"
local time = require "engine.time"

local M = {}

M.MANIFESTS = facts.MANIFESTS
M.COMPONENTS = facts.COMPONENTS
M.CONTROL_PLANE = facts.CONTROL_PLANE
M.quote = remote.quote

--- run(host, cmd, {timeout, stream, read_only, what}) → result: std.remote.must (exit 0 or raise).
M.run = remote.must

-- Reads, now in std.facts.
M.static_pods = facts.static_pods
M.strays = facts.strays
M.manifest_problems = facts.manifest_problems
M.running_images = facts.running_images
M.static_pods_match = facts.static_pods_match
M.package_version = facts.offered

-- The changes the operations below make; each changes the node whatever it holds.

-- Between a change and the fact its command prints after it (one exec does both; the operations
-- check the change from the text after this line instead of asking the node again).
local THEN = "--- engine: what it is now ---"

local function after_mark(r)
  local out = r and r.stdout or ""
  local at = out:find(THEN, 1, true)
  return at and out:sub(at + #THEN) or ""
end

--- use_minor_repo(host, version) → the apt source's text afterwards: points
--- /etc/apt/sources.list.d/kubernetes.list at the version's minor (pkgs.k8s.io has one repository
--- per minor) and updates the package lists.
function M.use_minor_repo(h, version)
  h = inventory.host(h, "kubeadm.use_minor_repo")
  local v = semver.parse(version)
  local minor = string.format("v%d.%d", v.major, v.minor)
  local r = M.run(h, "sed -i -E 's#/core:/stable:/v[0-9]+\\.[0-9]+/deb#/core:/stable:/" .. minor ..
    "/deb#' " .. facts.APT_SOURCE .. " && apt-get update -q && echo '" .. THEN .. "' && cat " .. facts.APT_SOURCE,
    { what = "switching the apt repository to " .. minor })
  return after_mark(r)
end

-- The exact versions apt is to install ({pkg = "1.34.3-1.1"}) and the quoted `pkg=version` specs.
local function specs_of(h, pkgs, version, offers)
  local specs, exact = {}, {}
  -- offers: what facts.installed_at already read (apt-cache policy's version table); asked with
  -- apt-cache madison only when it does not name every package.
  local offered = offers or {}
  for _, pkg in ipairs(pkgs) do
    if not offered[pkg] then offered = facts.offers(h, pkgs, version); break end
  end
  for _, pkg in ipairs(pkgs) do
    local pv = offered[pkg]
    if not pv and not http.dry_run() then
      error(string.format("%s: the apt repository offers no %s %s (apt-cache madison %s)", h.name, pkg,
        semver.format(version), pkg), 0)
    end
    specs[#specs + 1] = pkg .. "=" .. (pv or (semver.format(version) .. "-*"))
    exact[pkg] = pv
  end
  -- Package names come from the runbook, versions from the node's apt-cache: both quoted.
  local qspecs = {}
  for i, spec in ipairs(specs) do qspecs[i] = M.quote(spec) end
  return exact, table.concat(qspecs, " "), specs
end

--- install(host, packages, version) → apt-cache policy's output for them afterwards: each package
--- at the version, held afterwards.
function M.install(h, pkgs, version, offers)
  h = inventory.host(h, "kubeadm.install")
  local _, qspecs, specs = specs_of(h, pkgs, version, offers)
  local qnames = {}
  for i, pkg in ipairs(pkgs) do qnames[i] = M.quote(pkg) end
  local names = table.concat(qnames, " ")
  -- --allow-change-held-packages installs over a hold (no unhold first: a run stopped between the
  -- two would leave the package unheld); the hold is set again in any case.
  local r = M.run(h, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-change-held-packages " ..
    qspecs .. " && apt-mark hold " .. names .. " && echo '" .. THEN .. "' && apt-cache policy " .. names,
    { what = "installing " .. table.concat(specs, " "), timeout = 900 })
  return after_mark(r)
end

-- Marks a restart could not write (the API down at the time): node name → its annotation value.
local unmarked = {}

local function mark(name, value)
  return k8s.patch("nodes", name, { metadata = { annotations = { [k8s.KUBELET_RESTARTED] = value } } })
end

--- restart_kubelet(host) → the node's clock (epoch seconds) just before the restart, nil under
--- --dry-run. systemd is reloaded first (the kubelet's drop-ins may have changed with its package).
--- Pass the time to k8s.wait_node as heartbeat_after: until the new kubelet posts its first status
--- the Node still says what the old one said, often "Ready". The Node is marked first
--- (k8s.KUBELET_RESTARTED), so the Ready flap this causes is known to be an engine run's; a mark
--- the API refused is kept for mark_restarts().
function M.restart_kubelet(h)
  h = inventory.host(h, "kubeadm.restart_kubelet")
  -- Said on the Node first, so that a later upgrade's quiet_hours can tell this run's Ready flap
  -- from the node's own (k8s.node_info's flapped_by). Best effort: a node whose API cannot be
  -- reached is restarted all the same, and its flap will count.
  if not http.dry_run() then
    local value = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(time.now())) .. " " .. k8s.identity()
    local ok, err, msg = mark(h.name, value)
    if not ok then
      unmarked[h.name] = value
      log.warn("could not mark the node before restarting its kubelet: marked once the API answers (mark_restarts), " ..
        "else a later quiet_hours check will count this restart", { node = h.name, error = err, message = msg })
    end
  end
  local r = M.run(h, "date +%s && systemctl daemon-reload && systemctl restart kubelet", { what = "restarting the kubelet" })
  return tonumber((r.stdout or ""):match("^%s*(%d+)"))
end

--- restart_kubelet_ready(host, {timeout, version, hint}) → the Node once Ready (its kubelet at
--- version, when given) with a status posted after the restart; nil under --dry-run. Raises naming
--- the node: "NODE: not Ready after the kubelet restart: WHY (hint)".
function M.restart_kubelet_ready(h, opts)
  opts = check.options(opts, { "timeout", "version", "hint" }, "kubeadm.restart_kubelet_ready")
  local timeout_s = check.seconds(opts.timeout, "kubeadm.restart_kubelet_ready", "timeout") or 600
  h = inventory.host(h, "kubeadm.restart_kubelet_ready")
  local restarted = M.restart_kubelet(h)
  if http.dry_run() then return nil end
  local n, err, msg = k8s.wait_node(h, { ready = true, version = opts.version, heartbeat_after = restarted, timeout = timeout_s })
  if not n then
    error(string.format("%s: not Ready%s after the kubelet restart (%gs): %s%s", h.name, opts.version and (" at " .. opts.version) or "",
      timeout_s, tostring(msg or err), opts.hint and (" (" .. opts.hint .. ")") or ""), 0)
  end
  return n
end


--- mark_restarts() → the nodes marked now: the kubelet restarts this run made while the API did not
--- answer (a full control plane's, recover-disk), marked with the time each was made, once it does.
--- Those it still refuses stay for a later call.
function M.mark_restarts()
  local done = {}
  for name, value in pairs(unmarked) do
    if mark(name, value) then
      unmarked[name] = nil
      done[#done + 1] = name
      log.info("the node's kubelet restart marked, now that the API answers", { node = name, restarted = value })
    end
  end
  table.sort(done)
  return done
end

--- api_through(cps, opts) → tunnel, node name | nil, "unreachable", why: engine.k8s now reaches the
--- API through an SSH tunnel to the first of cps whose own API server answers (seed 002: the
--- controller's route to :6443 gone, SSH to the nodes still up). The run's credentials, or
--- opts.kubeconfig_data (a node's admin.conf read into memory); the certificate is checked against
--- "kubernetes", a name every kubeadm API server certificate carries. When none answers, the
--- kubeconfig's own route is put back and why each did not is returned.
function M.api_through(cps, opts)
  opts = opts or {}
  local why = {}
  for _, h in ipairs(cps) do
    h = inventory.host(h, "kubeadm.api_through")
    local t, err, msg = ssh.tunnel(h, h.vars.ansible_host or h.name, tonumber(h.vars.k8s_apiserver_port) or 6443)
    if t then
      k8s.configure { kubeconfig_data = opts.kubeconfig_data, server = "https://127.0.0.1:" .. t.port, tls_server_name = "kubernetes" }
      -- Once: a node whose API server is down says so at once, not after the client's retries.
      local ok, rerr, rmsg = k8s.ready { retry = false }
      if ok then
        log.info("the API answers through an SSH tunnel to the node's own API server", { node = h.name })
        return t, h.name
      end
      err, msg = rerr, rmsg
      t:close()
    end
    why[#why + 1] = h.name .. ": " .. tostring(msg or err)
  end
  k8s.configure {}
  return nil, "unreachable", table.concat(why, "; ")
end

--- reach_api(cps) → nil (the kubeconfig's route answers) | tunnel, node (only that node's own API
--- server does: api_through, and said so in one sentence) | nil, "unreachable", why (neither, or
--- no cps to try).
--- A runbook calls it first, so that every API call after it, the cluster Lease included, goes the
--- way that answers (seed 002: the controller's route cut while SSH to the nodes works).
function M.reach_api(cps)
  local ok, err, msg = k8s.ready()
  if ok then return nil end
  if #cps == 0 then
    return nil, "unreachable", string.format("the API does not answer through this run's kubeconfig (%s)", tostring(msg or err))
  end
  local route, node, why = M.api_through(cps)
  if not route then
    return nil, "unreachable", string.format("the API does not answer through this run's kubeconfig (%s), nor through a " ..
      "control-plane node's own API server: %s", tostring(msg or err), tostring(why))
  end
  print(string.format("The API does not answer through this run's kubeconfig; it does through an SSH tunnel to " ..
    "%s's own API server, with the same credentials: the run uses that.", node))
  return route, node
end

-- Operations ----------------------------------------------------------------------------------

--- apt_repository(version) → operation "apt repository": the node's apt source names the
--- version's minor (pkgs.k8s.io has one repository per minor).
function M.apt_repository(version)
  local v = semver.parse(version) or error("kubeadm.apt_repository: '" .. tostring(version) .. "' is not a version", 2)
  local minor = string.format("v%d.%d", v.major, v.minor)
  local function names(have) return have == minor, "the apt source names " .. tostring(have) .. ", not " .. minor end
  return {
    name = "apt repository",
    holds = function(h) return names(facts.apt_minor(h)) end,
    apply = function(h) return M.use_minor_repo(h, version) end,
    verify = function(_, text) return names(facts.apt_minor_in(text)) end,
  }
end

--- packages(pkgs, version, name) → operation (named `name`, default "packages"): each package
--- installed at the version and held.
function M.packages(pkgs, version, name)
  if type(pkgs) ~= "table" or #pkgs == 0 then error("kubeadm.packages: pkgs must be a list of package names", 2) end
  semver.format(version)
  local offers = {}  -- host name → the versions its last check saw offered (one apt-cache policy tells both)
  return {
    name = name or "packages",
    holds = function(h)
      local ok, why, o = facts.installed_at(h, pkgs, version)
      offers[h.name] = o
      return ok, why
    end,
    apply = function(h) return M.install(h, pkgs, version, offers[h.name]) end,
    verify = function(_, text)
      local ok, why = facts.installed_at_in(text, pkgs, version)
      return ok, why
    end,
  }
end

--- download(host, packages, version, offers) → the archives' listing afterwards (ls -1), and the
--- exact versions asked for ({pkg = "1.34.3-1.1"}): each package's .deb at the version fetched
--- into /var/cache/apt/archives (apt-get install --download-only), nothing unpacked, no hold changed.
function M.download(h, pkgs, version, offers)
  h = inventory.host(h, "kubeadm.download")
  local exact, qspecs, specs = specs_of(h, pkgs, version, offers)
  local r = M.run(h, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --download-only --allow-change-held-packages " ..
    qspecs .. " && echo '" .. THEN .. "' && ls -1 " .. facts.APT_ARCHIVES,
    { what = "downloading " .. table.concat(specs, " "), timeout = 900 })
  return after_mark(r), exact
end

--- downloaded(pkgs, version, name) → operation: the packages at the version either installed
--- already or their .debs in apt's archives (facts.archived), so that installing them later
--- unpacks without fetching. On a real mirror the fetch is most of an install's time: done while
--- the node still serves, it is not spent while the node is cordoned.
function M.downloaded(pkgs, version, name)
  if type(pkgs) ~= "table" or #pkgs == 0 then error("kubeadm.downloaded: pkgs must be a list of package names", 2) end
  local v = semver.format(version)
  local offers, need = {}, {}  -- host name → what its last check saw offered; what it lacks
  return {
    name = name or "packages downloaded",
    holds = function(h)
      local ok, why, o, have = facts.installed_at(h, pkgs, version)
      offers[h.name], need[h.name] = o, {}
      if ok then return true end
      for _, pkg in ipairs(pkgs) do
        if not o[pkg] then return false, why end  -- not offered (yet): the download says so
        local pv = have[pkg]
        if not pv or pv:sub(1, #v + 1) ~= v .. "-" then need[h.name][pkg] = o[pkg] end  -- apt fetches no installed one
      end
      return facts.archived(h, need[h.name])
    end,
    apply = function(h)
      local listing = M.download(h, pkgs, version, offers[h.name])
      return { listing = listing, need = need[h.name] or {} }
    end,
    verify = function(_, out) return facts.archived_in(out.listing, out.need) end,
  }
end

--- upgraded(how, version, {timeout, control_plane}) → operation "kubeadm upgrade apply" (how =
--- "apply", the first control-plane node) or "kubeadm upgrade node". On a control-plane node it
--- holds once its static pods run the version; a worker's has no fact to ask (kubeadm upgrade node
--- is safe to run again), so it runs whenever its step runs. component_timeout: kubeadm's own wait
--- for each static pod, in an UpgradeConfiguration file on the node (kubeadm 1.31+).
function M.upgraded(how, version, opts)
  if how ~= "apply" and how ~= "node" then error("kubeadm.upgraded: how must be \"apply\" or \"node\"", 2) end
  opts = check.options(opts, { "timeout", "control_plane", "component_timeout" }, "kubeadm.upgraded")
  local timeout_s = check.seconds(opts.timeout, "kubeadm.upgraded", "timeout")
  local component_s = check.seconds(opts.component_timeout, "kubeadm.upgraded", "component_timeout")
  local parsed = semver.parse(version) or error("kubeadm.upgraded: '" .. tostring(version) .. "' is not a version", 2)
  if component_s and parsed.major == 1 and parsed.minor < 31 then
    error("kubeadm.upgraded: component_timeout needs kubeadm 1.31 or later (UpgradeConfiguration v1beta4); "
      .. "older kubeadm waits its fixed 5 minutes", 2)
  end
  local v = "v" .. semver.format(version)
  -- kubeadm's per-component wait (seed 000: a slow node's apiserver missed the fixed 5 minutes) is
  -- set in a config file; kubeadm takes the version argument beside it.
  local config = component_s and "/etc/kubernetes/tmp/engine-upgrade-configuration.yaml"
  local cmd = (how == "apply" and ("kubeadm upgrade apply " .. v) or "kubeadm upgrade node")
    .. (config and (" --config " .. M.quote(config)) or "") .. (how == "apply" and " --yes" or "")
  local control_plane = how == "apply" or opts.control_plane ~= false
  return {
    name = "kubeadm upgrade " .. how,
    holds = control_plane and function(h) return M.static_pods_match(h, version) end or nil,
    apply = function(h)
      if config then
        local body = string.format("apiVersion: kubeadm.k8s.io/v1beta4\nkind: UpgradeConfiguration\n"
          .. "timeouts:\n  upgradeManifests: %ds\n  controlPlaneComponentHealthCheck: %ds\n",
          math.ceil(component_s), math.ceil(component_s))
        local ok, err, msg = h:write_file(config, body, { mode = "0600", sudo = true })
        if not ok then error(string.format("%s: writing %s: %s", h.name, config, msg or err), 0) end
      end
      M.run(h, cmd, { timeout = timeout_s, stream = true, what = cmd })
    end,
  }
end

--- kubelet_at(version, {timeout}) → operation "restart kubelet": the node Ready, its kubelet
--- reporting the version. Restarts the kubelet and waits for the new one's first Ready.
function M.kubelet_at(version, opts)
  opts = check.options(opts, { "timeout" }, "kubeadm.kubelet_at")
  local timeout_s = check.seconds(opts.timeout, "kubeadm.kubelet_at", "timeout") or 600
  local v = "v" .. semver.format(version)
  local function at(n)  -- Ready with its kubelet at the version, or what it is instead
    return n.ready and n.kubelet_version == v, string.format("%s, kubelet %s", n.ready and "Ready" or "NotReady",
      tostring(n.kubelet_version))
  end
  return {
    name = "restart kubelet",
    holds = function(h)
      local n, err, msg = facts.node(h)
      if not n then return false, msg or err end
      return at(n)
    end,
    apply = function(h) return M.restart_kubelet_ready(h, { timeout = timeout_s, version = version }) end,
    verify = function(_, n) return at(n) end,  -- what the wait saw: the new kubelet's own Ready
  }
end

--- static_pods_at(version, {timeout}) → operation "static pods at target" (without a version:
--- "static pods run their manifests"): every static pod runs its manifest's image and is ready
--- (and the control plane's manifests name the version). Waits for it; changes nothing itself.
function M.static_pods_at(version, opts)
  opts = check.options(opts, { "timeout" }, "kubeadm.static_pods_at")
  local timeout_s = check.seconds(opts.timeout, "kubeadm.static_pods_at", "timeout") or 600
  return {
    name = version and "static pods at target" or "static pods run their manifests",
    holds = function(h)
      local ok, _, why = M.static_pods_match(h, version)
      return ok == true, why
    end,
    apply = function(h)
      if http.dry_run() then return end
      local deadline = time.monotonic() + timeout_s
      while true do
        local ok, _, why = M.static_pods_match(h, version)
        if ok then return true end
        if time.monotonic() > deadline then
          error(string.format("%s: the static pods do not run %s: %s", h.name,
            version and ("v" .. semver.format(version)) or "their manifests", why), 0)
        end
        sleep(2)
      end
    end,
    verify = function(_, matched) return matched == true, "the wait ended without a match" end,
  }
end

return M
