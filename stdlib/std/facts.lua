-- std.facts: what a node or the cluster is, read and never changed (every command read_only, so
-- --dry-run reads for real). Operations (std.ops) ask facts whether their desired state already
-- holds before they change anything, and again after. A fact that cannot read the node raises,
-- naming the host and what it read; one that reads the cluster returns nil, word, message.
local http = require "engine.http"
local inventory = require "engine.inventory"
local k8s = require "engine.k8s"
local remote = require "std.remote"
local semver = require "std.semver"

local M = {}

M.MANIFESTS = "/etc/kubernetes/manifests"
M.COMPONENTS = { "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler" }
M.CONTROL_PLANE = { "kube-apiserver", "kube-controller-manager", "kube-scheduler" }

--- static_pods(host) → {{file, name, image, images = {..}, error}} for every file in the manifests
--- directory the kubelet would read (all but dot files), valid or not.
function M.static_pods(h)
  h = inventory.host(h, "facts.static_pods")
  local out = remote.read_files(h, M.MANIFESTS, { "*" }, { what = "reading " .. M.MANIFESTS })
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
  h = inventory.host(h, "facts.strays")
  local want = {}
  for _, c in ipairs(expected or M.COMPONENTS) do want[c .. ".yaml"] = true end
  local out = {}
  for _, m in ipairs(M.static_pods(h)) do if not want[m.file] then out[#out + 1] = m.file end end
  table.sort(out)
  return out
end

--- missing_manifests(host, pods) → the control-plane components (kube-apiserver,
--- kube-controller-manager, kube-scheduler) with no NAME.yaml in the manifests directory, sorted:
--- the kubelet runs none of them here. pods: M.static_pods(host) when already read. etcd is not
--- among them: it may run under systemd (etcd_nodes.where tells).
function M.missing_manifests(h, pods)
  h = inventory.host(h, "facts.missing_manifests")
  local have = {}
  for _, m in ipairs(pods or M.static_pods(h)) do have[m.file] = true end
  local out = {}
  for _, c in ipairs(M.CONTROL_PLANE) do if not have[c .. ".yaml"] then out[#out + 1] = c end end
  return out
end

--- manifest_problems(host, expected) → list of sentences: files in the manifests directory other
--- than NAME.yaml for the expected components (a *.bak is read by the kubelet as a pod of its own),
--- two files defining one pod name, invalid files. Empty when clean.
function M.manifest_problems(h, expected)
  h = inventory.host(h, "facts.manifest_problems")
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

--- image_version(image) → "v1.33.1": the vX.Y.Z tag of an image reference (a control-plane
--- manifest's), nil for a digest or a tag of another shape.
function M.image_version(image)
  local t = tag(image)
  return t and t:match("^v%d+%.%d+%.%d+$")
end

--- static_pods_match(host, version) → true | nil, "mismatch", message (or the API's err, message). Every static pod the kubelet should run (a
--- NAME.yaml manifest) runs the image its manifest names and is ready; with a version, the
--- control-plane components' manifests also name that version (seed 000: the manifest said 1.34.3
--- while a stale .bak kept the pod at 1.33.1).
function M.static_pods_match(h, version)
  h = inventory.host(h, "facts.static_pods_match")
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

--- offers(host, pkgs, version) → {pkg = "1.34.3-1.1", ...}: the exact package version the node's
--- apt source offers for each package (absent: none), from one apt-cache madison for them all.
function M.offers(h, pkgs, version)
  h = inventory.host(h, "facts.offers")
  local v = semver.format(version)
  local q = {}
  for i, pkg in ipairs(pkgs) do q[i] = remote.quote(pkg) end
  local r = remote.must(h, "apt-cache madison " .. table.concat(q, " "), { read_only = true,
    what = "apt-cache madison " .. table.concat(pkgs, " ") })
  local out = {}
  for line in r.stdout:gmatch("[^\n]+") do
    local name, pv = line:match("^%s*(%S+)%s*|%s*(%S+)%s*|")
    if name and not out[name] and pv:sub(1, #v + 1) == v .. "-" then out[name] = pv end
  end
  return out
end

--- versions(host, pkg) → {"1.33.5", "1.33.1", ...}: every upstream version of the package the
--- node's apt source offers, newest first (pkgs.k8s.io: the one minor the source names).
function M.versions(h, pkg)
  h = inventory.host(h, "facts.versions")
  local r = remote.must(h, "apt-cache madison " .. remote.quote(pkg), { read_only = true, what = "apt-cache madison " .. pkg })
  local out, seen = {}, {}
  for line in r.stdout:gmatch("[^\n]+") do
    local name, pv = line:match("^%s*(%S+)%s*|%s*(%S+)%s*|")
    local v = name == pkg and semver.parse((pv:gsub("^%d+:", ""):match("^[%d%.]+") or ""))
    if v and not seen[semver.format(v)] then
      seen[semver.format(v)] = true
      out[#out + 1] = v
    end
  end
  table.sort(out, function(a, b) return semver.compare(a, b) > 0 end)
  for i, v in ipairs(out) do out[i] = semver.format(v) end
  return out
end

--- offered(host, pkg, version) → "1.34.3-1.1": the exact package version the node's apt source offers, or nil.
function M.offered(h, pkg, version)
  return M.offers(h, { pkg }, version)[pkg]
end

--- The installed version of each package ("1.34.3-1.1", false when not installed), from one
--- apt-cache policy for them all: each package's section starts with its name and a colon.
-- apt-cache policy: what is installed, and (its "Version table") every version some source
-- offers: a version line ("     1.34.3-1.1 500", " *** 1.33.1-1.1 100" when installed) followed by
-- its sources ("        500 https://pkgs.k8s.io/... Packages"); one whose only source is
-- /var/lib/dpkg/status is installed but offered by no repository. Returns the installed version of
-- each package (false: none, or apt knows no such package) and the versions offered, newest first.
local function parse_policies(text, pkgs)
  local out, offered, cur, ver = {}, {}, nil, nil
  for line in text:gmatch("[^\n]+") do
    local name = line:match("^(%S+):%s*$")
    if name then
      cur, ver = name, nil
      offered[cur] = offered[cur] or {}
    elseif cur then
      local v = line:match("^%s+Installed:%s*(%S+)")
      if v and out[cur] == nil then out[cur] = v ~= "(none)" and v end
      local tv = line:match("^%s*%**%s+(%S+)%s+%-?%d+%s*$")
      if tv and not line:match("^%s+%u%l+:") then
        ver = tv
      elseif ver and line:match("^%s+%-?%d+%s+%S") and not line:find("/var/lib/dpkg/status", 1, true) then
        local list = offered[cur]
        if list[#list] ~= ver then list[#list + 1] = ver end
      end
    end
  end
  for _, pkg in ipairs(pkgs) do if not out[pkg] then out[pkg] = false end end  -- apt knows no such package
  return out, offered
end

local function policies(h, pkgs)
  local q = {}
  for i, pkg in ipairs(pkgs) do q[i] = remote.quote(pkg) end
  local r = remote.must(h, "apt-cache policy " .. table.concat(q, " "), { read_only = true,
    what = "apt-cache policy " .. table.concat(pkgs, " ") })
  return parse_policies(r.stdout, pkgs)
end

--- installed(host, pkg) → "1.34.3-1.1", or false when the package is not installed (apt-cache policy).
function M.installed(h, pkg)
  h = inventory.host(h, "facts.installed")
  return policies(h, { pkg })[pkg]
end

local function at_version(have, table_of, pkgs, version)
  local v = semver.format(version)
  local off, offers = {}, {}
  for _, pkg in ipairs(pkgs) do
    local pv = have[pkg]
    if not pv or pv:sub(1, #v + 1) ~= v .. "-" then off[#off + 1] = pkg .. " " .. tostring(pv or "not installed") .. ", not " .. v end
    for _, tv in ipairs(table_of[pkg] or {}) do
      if not offers[pkg] and tv:sub(1, #v + 1) == v .. "-" then offers[pkg] = tv end
    end
  end
  if #off > 0 then return false, table.concat(off, "; "), offers end
  return true, nil, offers
end

--- installed_at(host, pkgs, version) → true | false, "kubelet 1.33.1-1.1, not 1.34.3", offers, installed:
--- every package at the version. offers: {pkg = "1.34.3-1.1"}, the exact version of each that a
--- repository offers, from the same apt-cache policy (its version table), as facts.offers says it;
--- installed: {pkg = "1.33.1-1.1" or false}, what is installed now.
function M.installed_at(h, pkgs, version)
  h = inventory.host(h, "facts.installed_at")
  local have, table_of = policies(h, pkgs)
  local ok, why, offers = at_version(have, table_of, pkgs, version)
  return ok, why, offers, have
end

--- installed_at_in(policy_text, pkgs, version) → installed_at's answer from the output of an
--- `apt-cache policy PKGS` already run (the install's own command ends with one).
function M.installed_at_in(text, pkgs, version)
  if type(text) ~= "string" then error("facts.installed_at_in: policy_text must be apt-cache policy's output", 2) end
  local have, table_of = parse_policies(text, pkgs)
  return at_version(have, table_of, pkgs, version)
end

M.APT_SOURCE = "/etc/apt/sources.list.d/kubernetes.list"
M.APT_ARCHIVES = "/var/cache/apt/archives"

--- archived_in(listing, versions) → true | false, "kubelet 1.34.3-1.1 not in /var/cache/apt/archives":
--- every package's .deb at its exact version in a listing of apt's archives (`ls -1`, one name a
--- line). versions: {pkg = "1.34.3-1.1"} (an epoch's colon is %3a in the file's name, as apt names it).
function M.archived_in(text, versions)
  if type(text) ~= "string" then error("facts.archived_in: listing must be ls -1's output", 2) end
  if type(versions) ~= "table" then error("facts.archived_in: versions must be {pkg = version}", 2) end
  local have = {}
  for line in text:gmatch("[^\n]+") do have[line] = true end
  local names = {}
  for pkg in pairs(versions) do names[#names + 1] = pkg end
  table.sort(names)
  local missing = {}
  for _, pkg in ipairs(names) do
    local prefix = pkg .. "_" .. versions[pkg]:gsub(":", "%%3a") .. "_"
    local found = false
    for f in pairs(have) do
      if f:sub(1, #prefix) == prefix and f:sub(-4) == ".deb" then found = true break end
    end
    if not found then missing[#missing + 1] = pkg .. " " .. versions[pkg] end
  end
  if #missing > 0 then return false, table.concat(missing, ", ") .. " not in " .. M.APT_ARCHIVES end
  return true
end

--- archived(host, versions) → archived_in's answer for the node's /var/cache/apt/archives: the
--- packages downloaded at those versions (apt-get install --download-only), not yet unpacked.
function M.archived(h, versions)
  h = inventory.host(h, "facts.archived")
  local r = remote.must(h, "ls -1 " .. M.APT_ARCHIVES .. " 2>/dev/null || true", { read_only = true,
    what = "listing " .. M.APT_ARCHIVES })
  return M.archived_in(r.stdout, versions)
end

--- apt_minor_in(text) → "v1.34": the minor an apt source file's text names (pkgs.k8s.io), or nil.
function M.apt_minor_in(text)
  if type(text) ~= "string" then error("facts.apt_minor_in: text must be the apt source file's text", 2) end
  return text:match("/core:/stable:/(v%d+%.%d+)/deb")
end

--- apt_source(host) → the text of the node's Kubernetes apt source (M.APT_SOURCE).
function M.apt_source(h)
  h = inventory.host(h, "facts.apt_source")
  return remote.must(h, "cat " .. M.APT_SOURCE, { read_only = true, what = "reading " .. M.APT_SOURCE }).stdout
end

--- apt_minor(host) → "v1.34": the Kubernetes minor the node's apt source (pkgs.k8s.io) names, or nil.
function M.apt_minor(h)
  return M.apt_minor_in(M.apt_source(inventory.host(h, "facts.apt_minor")))
end

--- node(node) → k8s.node_info of the node (a host or its name) | nil, word, message.
function M.node(node)
  local n, err, msg = k8s.get("nodes", type(node) == "table" and node.name or node)
  if not n then return nil, err, msg end
  return k8s.node_info(n)
end

return M
