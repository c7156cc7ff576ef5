-- std.kubeadm: what runbooks do on the nodes of a kubeadm cluster, over SSH: read the static Pod
-- manifests and find strays (seed 000), compare them with what really runs, install the kubeadm /
-- kubelet / kubectl packages at a version from pkgs.k8s.io, run a command that must succeed.
local check = require "engine.check"
local http = require "engine.http"
local inventory = require "engine.inventory"
local k8s = require "engine.k8s"
local semver = require "std.semver"

local M = {}

M.MANIFESTS = "/etc/kubernetes/manifests"
M.COMPONENTS = { "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler" }
M.CONTROL_PLANE = { "kube-apiserver", "kube-controller-manager", "kube-scheduler" }

M.quote = require("engine.ssh").quote

local function tail(s, n)
  s = (s or ""):gsub("%s+$", "")
  if #s > (n or 600) then s = "..." .. s:sub(-(n or 600)) end
  return s
end

--- run(host, cmd, {timeout, stream, read_only, what}) → result. The command must exit 0: anything
--- else raises with the host, what was being done, and the end of its stderr (and stdout).
function M.run(h, cmd, opts)
  h = inventory.host(h, "kubeadm.run")
  opts = check.options(opts, { "timeout", "stream", "read_only", "what" }, "kubeadm.run")
  local r, err, msg = h:exec(cmd, { sudo = true, timeout = opts.timeout, stream = opts.stream, read_only = opts.read_only })
  local what = opts.what or cmd
  if not r then error(string.format("%s: %s: %s (%s)", h.name, what, err, msg or ""), 0) end
  if r.code ~= 0 then
    local out = tail(r.stderr) ~= "" and tail(r.stderr) or tail(r.stdout)
    error(string.format("%s: %s exited %d: %s", h.name, what, r.code, out), 0)
  end
  return r
end

--- static_pods(host) → {{file, name, image, images = {..}, error}} for every file in the manifests
--- directory the kubelet would read (all but dot files), valid or not.
function M.static_pods(h)
  h = inventory.host(h, "kubeadm.static_pods")
  local r = M.run(h, "cd " .. M.MANIFESTS .. " && for f in *; do [ -f \"$f\" ] || continue; " ..
    "printf '\\n==> %s <==\\n' \"$f\"; cat \"$f\"; done", { read_only = true, what = "reading " .. M.MANIFESTS })
  local out = {}
  local text = "\n" .. r.stdout
  local pos = 1
  while true do
    local s, e, name = text:find("\n==> (.-) <==\n", pos)
    if not s then break end
    local nxt = text:find("\n==> .- <==\n", e + 1) or (#text + 1)
    out[#out + 1] = { file = name, body = text:sub(e + 1, nxt - 1) }
    pos = nxt
  end
  for _, m in ipairs(out) do
    local doc, err, why = http.yaml_decode(m.body)
    if type(doc) == "table" and type(doc.metadata) == "table" and doc.metadata.name then
      m.name = doc.metadata.name
      m.images = {}
      for _, c in ipairs((doc.spec or {}).containers or {}) do m.images[#m.images + 1] = c.image end
      m.image = m.images[1]
    else
      m.error = err and (err .. ": " .. tostring(why)) or "not a Pod manifest"
    end
    m.body = nil
  end
  return out
end

--- strays(host, expected) → file names in the manifests directory that are not NAME.yaml for an
--- expected component (kubeadm's four by default): what the kubelet should not be reading.
function M.strays(h, expected)
  h = inventory.host(h, "kubeadm.strays")
  local want = {}
  for _, c in ipairs(expected or M.COMPONENTS) do want[c .. ".yaml"] = true end
  local out = {}
  for _, m in ipairs(M.static_pods(h)) do if not want[m.file] then out[#out + 1] = m.file end end
  table.sort(out)
  return out
end

--- manifest_problems(host, expected) → list of sentences: files in the manifests directory other
--- than NAME.yaml for the expected components (a *.bak is read by the kubelet as a pod of its own),
--- two files defining one pod name, invalid files. Empty when clean.
function M.manifest_problems(h, expected)
  h = inventory.host(h, "kubeadm.manifest_problems")
  expected = expected or M.COMPONENTS
  local want = {}
  for _, c in ipairs(expected) do want[c .. ".yaml"] = c end
  local problems, by_name = {}, {}
  for _, m in ipairs(M.static_pods(h)) do
    if m.name then
      by_name[m.name] = by_name[m.name] or {}
      table.insert(by_name[m.name], m.file)
    end
    if not want[m.file] then
      problems[#problems + 1] = string.format("%s/%s is not an expected manifest%s: the kubelet runs it too",
        M.MANIFESTS, m.file, m.name and (" (pod " .. m.name .. ", image " .. tostring(m.image) .. ")") or "")
    elseif m.error then
      problems[#problems + 1] = string.format("%s/%s is invalid: %s", M.MANIFESTS, m.file, m.error)
    end
  end
  for name, files in pairs(by_name) do
    if #files > 1 then
      table.sort(files)
      problems[#problems + 1] = string.format("pod %s is defined by %d files: %s", name, #files, table.concat(files, ", "))
    end
  end
  table.sort(problems)
  return problems
end

--- running_images(node) → {component = image} from the node's mirror pods (what the kubelet runs).
function M.running_images(node)
  if type(node) == "table" then node = node.name end
  local pods, err, msg = k8s.list("pods", { namespace = "kube-system", field_selector = "spec.nodeName=" .. node })
  if not pods then return nil, err, msg end
  local out = {}
  for _, p in ipairs(pods) do
    local ann = p.metadata.annotations or {}
    local comp = (p.metadata.labels or {}).component
    if ann["kubernetes.io/config.mirror"] and comp then
      out[comp] = { image = p.spec.containers[1].image, ready = false }
      for _, c in ipairs((p.status or {}).conditions or {}) do
        if c.type == "Ready" then out[comp].ready = c.status == "True" end
      end
    end
  end
  return out
end

local function tag(image) return tostring(image):match(":([^:/]+)$") end

--- static_pods_match(host, version) → true | nil, "mismatch", message (or the API's err, message). Every static pod the kubelet should run (a
--- NAME.yaml manifest) runs the image its manifest names and is ready; with a version, the
--- control-plane components' manifests also name that version (seed 000: the manifest said 1.34.3
--- while a stale .bak kept the pod at 1.33.1).
function M.static_pods_match(h, version)
  h = inventory.host(h, "kubeadm.static_pods_match")
  local want = version and ("v" .. semver.format(version))
  local manifests = {}
  for _, m in ipairs(M.static_pods(h)) do if m.file:match("%.yaml$") and m.name then manifests[m.name] = m end end
  local running, err, msg = M.running_images(h.name)
  if not running then return nil, err, "cannot read the mirror pods: " .. tostring(msg or err) end
  local bad = {}
  local names = {}
  for _, c in ipairs(version and M.CONTROL_PLANE or M.COMPONENTS) do names[#names + 1] = c end
  for _, c in ipairs(names) do
    local m, r = manifests[c], running[c]
    if not m then
      if version then bad[#bad + 1] = c .. ": no manifest" end
    elseif want and tag(m.image) ~= want then
      bad[#bad + 1] = string.format("%s: the manifest names %s, not %s", c, m.image, want)
    elseif not r then
      bad[#bad + 1] = c .. ": no mirror pod (the kubelet does not run it)"
    elseif r.image ~= m.image then
      bad[#bad + 1] = string.format("%s: the manifest names %s but the pod runs %s", c, m.image, r.image)
    elseif not r.ready then
      bad[#bad + 1] = c .. ": the pod runs " .. r.image .. " but is not ready"
    end
  end
  if #bad > 0 then return nil, "mismatch", table.concat(bad, "; ") end
  return true
end

--- package_version(host, pkg, version) → "1.34.3-1.1": the exact package version pkgs.k8s.io offers.
function M.package_version(h, pkg, version)
  h = inventory.host(h, "kubeadm.package_version")
  local v = semver.format(version)
  local r = M.run(h, "apt-cache madison " .. M.quote(pkg), { read_only = true, what = "apt-cache madison " .. pkg })
  for line in r.stdout:gmatch("[^\n]+") do
    local pv = line:match("|%s*(%S+)%s*|")
    if pv and pv:sub(1, #v + 1) == v .. "-" then return pv end
  end
  return nil
end

--- use_minor_repo(host, version): points /etc/apt/sources.list.d/kubernetes.list at the version's
--- minor (pkgs.k8s.io has one repository per minor) and updates the package lists.
function M.use_minor_repo(h, version)
  h = inventory.host(h, "kubeadm.use_minor_repo")
  local v = semver.parse(version)
  local minor = string.format("v%d.%d", v.major, v.minor)
  M.run(h, "sed -i -E 's#/core:/stable:/v[0-9]+\\.[0-9]+/deb#/core:/stable:/" .. minor ..
    "/deb#' /etc/apt/sources.list.d/kubernetes.list && apt-get update -q", { what = "switching the apt repository to " .. minor })
end

--- install(host, packages, version): each package at the version, held again afterwards.
function M.install(h, pkgs, version)
  h = inventory.host(h, "kubeadm.install")
  local specs = {}
  for _, pkg in ipairs(pkgs) do
    local pv = M.package_version(h, pkg, version)
    if not pv and not http.dry_run() then
      error(string.format("%s: the apt repository offers no %s %s (apt-cache madison %s)", h.name, pkg,
        semver.format(version), pkg), 0)
    end
    specs[#specs + 1] = pkg .. "=" .. (pv or (semver.format(version) .. "-*"))
  end
  -- Package names come from the runbook, versions from the node's apt-cache: both quoted.
  local qnames, qspecs = {}, {}
  for i, pkg in ipairs(pkgs) do qnames[i] = M.quote(pkg) end
  for i, spec in ipairs(specs) do qspecs[i] = M.quote(spec) end
  local names = table.concat(qnames, " ")
  M.run(h, "apt-mark unhold " .. names .. " && DEBIAN_FRONTEND=noninteractive apt-get install -y -q " ..
    "--allow-change-held-packages " .. table.concat(qspecs, " ") .. " && apt-mark hold " .. names,
    { what = "installing " .. table.concat(specs, " "), timeout = 900 })
end

--- restart_kubelet(host) → the node's clock (epoch seconds) just before the restart, nil under
--- --dry-run. systemd is reloaded first (the kubelet's drop-ins may have changed with its package).
--- Pass the time to k8s.wait_node as heartbeat_after: until the new kubelet posts its first status
--- the Node still says what the old one said, often "Ready".
function M.restart_kubelet(h)
  h = inventory.host(h, "kubeadm.restart_kubelet")
  local r = M.run(h, "date +%s && systemctl daemon-reload && systemctl restart kubelet", { what = "restarting the kubelet" })
  return tonumber((r.stdout or ""):match("^%s*(%d+)"))
end

return M
