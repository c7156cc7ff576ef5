-- std.etcd_service: etcd as a systemd service on a control-plane node (seed 003), as facts and
-- operations (std.ops). The static Pod kubeadm wrote is read, never guessed: the service gets the
-- same flags (as ETCD_* variables), the same certificates and the same data directory, so the
-- member that comes back under systemd is the member that left the static Pod.
local http = require "engine.http"
local inventory = require "engine.inventory"
local remote = require "std.remote"

local M = {}

M.MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
M.ENV_FILE = "/etc/etcd/etcd.env"
M.UNIT = "etcd.service"
M.BIN = "/usr/local/bin"
M.CACHE = "/var/cache/engine/etcd"
-- etcd's official release tarballs (seed 003, decision 7); {version} is filled in.
M.DOWNLOAD_URL = "https://github.com/etcd-io/etcd/releases/download/v{version}/etcd-v{version}-linux-amd64.tar.gz"

local q = remote.quote

-- Which etcd a Kubernetes minor runs with: the newest etcd minor kubeadm ships for it (kubeadm's
-- SupportedEtcdVersion: 3.5.x up to v1.33, 3.6.x from v1.34). An etcd minor newer than that is
-- refused for the cluster (docs/etcd.md). A Kubernetes minor newer than the table gets its last row.
M.NEWEST_ETCD_MINOR = { ["1.28"] = "3.5", ["1.29"] = "3.5", ["1.30"] = "3.5", ["1.31"] = "3.5", ["1.32"] = "3.5",
  ["1.33"] = "3.5", ["1.34"] = "3.6", ["1.35"] = "3.6" }
-- etcd's own rule for 3.5 → 3.6: every member at 3.5.20 or later first.
M.MIN_FOR_36 = "3.5.20"

local function vparts(v)
  local a, b, c = tostring(v):match("^v?(%d+)%.(%d+)%.(%d+)")
  if not a then return nil end
  return { tonumber(a), tonumber(b), tonumber(c) }
end

local function vless(a, b)
  for i = 1, 3 do if a[i] ~= b[i] then return a[i] < b[i] end end
  return false
end

-- Settings a minor no longer starts with (etcd exits: "--logger=capnslog is removed in v3.5"), as
-- the EnvironmentFile spells them; value nil: any value.
M.REMOVED = { ["3.5"] = { { "ETCD_LOGGER", "capnslog" } }, ["3.6"] = { { "ETCD_ENABLE_V2" } } }

--- removed_settings(env_text, target) → the lines of an EnvironmentFile that etcd `target` refuses.
function M.removed_settings(env_text, target)
  local t = vparts(target)
  local out = {}
  if not t then return out end
  for line in (env_text or ""):gmatch("[^\n]+") do
    local k, v = line:match("^%s*([%w_]+)=(.*)$")
    for minor, list in pairs(M.REMOVED) do
      local m = vparts(minor .. ".0")
      if k and t[2] >= m[2] then
        for _, r in ipairs(list) do
          if k == r[1] and (r[2] == nil or v == r[2]) then out[#out + 1] = line .. " (removed in " .. minor .. ")" end
        end
      end
    end
  end
  return out
end

--- upgrade_problems(running, target, kubernetes) → list of sentences, empty when the upgrade is
--- allowed: running, the versions the members run; target, X.Y.Z; kubernetes, the cluster's
--- version ("v1.33.1"). One minor at a time, no downgrade, 3.5.20+ before 3.6, and no etcd minor
--- newer than the Kubernetes minor runs with (M.NEWEST_ETCD_MINOR).
function M.upgrade_problems(running, target, kubernetes)
  local out = {}
  local t = vparts(target)
  if not t or t[1] ~= 3 then return { "etcd " .. tostring(target) .. " is not a 3.x.y version" } end
  local seen = {}
  for _, v in ipairs(running) do
    if seen[v] then goto continue end
    seen[v] = true
    local r = vparts(v)
    if not r then
      out[#out + 1] = "a member reports the version " .. tostring(v)
    elseif vless(t, r) then
      out[#out + 1] = string.format("%s is older than the running %s: etcd does not downgrade", target, v)
    elseif t[2] > r[2] + 1 then
      out[#out + 1] = string.format("%s → %s skips a minor: upgrade one minor at a time (%d.%d first)", v, target, r[1], r[2] + 1)
    elseif t[2] >= 6 and r[2] == 5 and vless(r, vparts(M.MIN_FOR_36)) then
      out[#out + 1] = string.format("a member runs %s: every member must run %s or later before 3.6", v, M.MIN_FOR_36)
    end
    ::continue::
  end
  local minor, newest = M.etcd_minor_for(kubernetes)
  if newest and t[2] > vparts(newest .. ".0")[2] then
    out[#out + 1] = string.format("Kubernetes v%s runs with etcd up to %s (kubeadm ships %s.x for it); %s is newer",
      minor, newest, newest, target)
  end
  return out
end

--- etcd_minor_for(kubernetes) → "1.34", "3.6": the Kubernetes version's minor and the etcd minor
--- kubeadm ships for it (M.NEWEST_ETCD_MINOR; past the table, its last row); nil for another form.
function M.etcd_minor_for(kubernetes)
  local k = vparts(kubernetes)
  if not k then return nil end
  local minor = k[1] .. "." .. k[2]
  local newest = M.NEWEST_ETCD_MINOR[minor]
  if not newest then
    local last
    for m, e in pairs(M.NEWEST_ETCD_MINOR) do
      local mp = vparts(m .. ".0")
      if not last or vless(vparts(last[1] .. ".0"), mp) then last = { m, e } end
    end
    newest = vless(vparts(last[1] .. ".0"), vparts(minor .. ".0")) and last[2] or "3.5"
  end
  return minor, newest
end

--- behind(running, kubernetes) → sentence | nil: an etcd kubeadm does not upgrade (under systemd)
--- at a minor older than the one kubeadm ships for that Kubernetes version (`kubeadm upgrade
--- plan` lists such an etcd as a component to upgrade by hand, first).
function M.behind(running, kubernetes)
  local minor, newest = M.etcd_minor_for(kubernetes)
  if not newest then return nil end
  local want = vparts(newest .. ".0")
  local old = {}
  for _, v in ipairs(running) do
    local r = vparts(v)
    if r and (r[1] < want[1] or (r[1] == want[1] and r[2] < want[2])) then old[v] = true end
  end
  local list = {}
  for v in pairs(old) do list[#list + 1] = v end
  if #list == 0 then return nil end
  table.sort(list)
  return string.format("etcd %s under systemd is behind the %s kubeadm ships for v%s, and kubeadm upgrades only its " ..
    "own static-Pod etcd: upgrade it first (runbooks/etcd-upgrade.lua; etcd first, then Kubernetes)",
    table.concat(list, ", "), newest, minor)
end

--- flags_of(manifest_text) → {name = value}, {names in order} | nil, "invalid", why: the etcd
--- container's command line of a static Pod manifest.
function M.flags_of(text)
  local doc, err, why = http.yaml_decode(text)
  if type(doc) ~= "table" or type(doc.spec) ~= "table" then return nil, "invalid", err and (err .. ": " .. tostring(why)) or "not a Pod" end
  local c = (doc.spec.containers or {})[1]
  if type(c) ~= "table" then return nil, "invalid", "the Pod has no container" end
  local argv = {}
  for _, a in ipairs(c.command or {}) do argv[#argv + 1] = tostring(a) end
  for _, a in ipairs(c.args or {}) do argv[#argv + 1] = tostring(a) end
  local flags, order = {}, {}
  for _, a in ipairs(argv) do
    local k, v = a:match("^%-%-([%w%-%.]+)=(.*)$")
    if not k then k = a:match("^%-%-([%w%-%.]+)$"); v = k and "true" end
    if k then
      if flags[k] == nil then order[#order + 1] = k end
      flags[k] = v
    end
  end
  if not flags.name or not flags["data-dir"] then return nil, "invalid", "the etcd command has no --name or --data-dir" end
  return flags, order, doc
end

--- manifest(host, path) → {file, flags, order, image} | nil when the file is not there. Raises on
--- a file that is not an etcd Pod.
function M.manifest(h, path)
  h = inventory.host(h, "etcd_service.manifest")
  path = path or M.MANIFEST
  local r = remote.must(h, "if [ -f " .. q(path) .. " ]; then printf 1; cat " .. q(path) .. "; else printf 0; fi",
    { read_only = true, what = "reading " .. path })
  if r.stdout:sub(1, 1) ~= "1" then return nil end
  local flags, order, doc = M.flags_of(r.stdout:sub(2))
  if not flags then error(string.format("%s: %s is not an etcd static Pod: %s", h.name, path, tostring(doc or order)), 0) end
  local c = doc.spec.containers[1]
  return { file = path, flags = flags, order = order, image = c.image }
end

--- env_name("listen-client-urls") → "ETCD_LISTEN_CLIENT_URLS": etcd reads every flag so.
function M.env_name(flag)
  return "ETCD_" .. flag:upper():gsub("[%-%.]", "_")
end

--- env_text(flags, order, overrides) → the EnvironmentFile: every flag as its ETCD_ variable, in
--- the manifest's order, overrides (flag → value, false to drop) applied.
function M.env_text(flags, order, overrides)
  overrides = overrides or {}
  local lines = { "# etcd's settings, carried over from kubeadm's static Pod by engine (etcd-to-systemd).",
    "# Each line is one etcd flag: --listen-client-urls is ETCD_LISTEN_CLIENT_URLS." }
  local seen = {}
  local function add(k, v)
    if v == false or v == nil then return end
    if tostring(v):find("[\n\r]") then error("etcd_service.env_text: the value of --" .. k .. " has a line break", 3) end
    lines[#lines + 1] = M.env_name(k) .. "=" .. tostring(v)
  end
  for _, k in ipairs(order) do
    seen[k] = true
    local v = flags[k]
    if overrides[k] ~= nil then v = overrides[k] end
    add(k, v)
  end
  local extra = {}
  for k in pairs(overrides) do if not seen[k] then extra[#extra + 1] = k end end
  table.sort(extra)
  for _, k in ipairs(extra) do add(k, overrides[k]) end
  return table.concat(lines, "\n") .. "\n"
end

--- flags_of_env(text) → {flag = value}: an EnvironmentFile read back (ETCD_LISTEN_CLIENT_URLS is
--- listen-client-urls).
function M.flags_of_env(text)
  local flags = {}
  for line in (text or ""):gmatch("[^\n]+") do
    local k, v = line:match("^%s*ETCD_([%w_]+)=(.*)$")
    if k then flags[k:lower():gsub("_", "-")] = v end
  end
  return flags
end

--- unit_text{bin, env_file, user, restart_sec, nofile} → etcd.service: Type=notify (etcd says
--- READY=1 once it serves), Restart=always, as seed 003's install-etcd-systemd role has it.
function M.unit_text(opts)
  opts = opts or {}
  return table.concat({
    "[Unit]",
    "Description=etcd key-value store (managed by engine; was kubeadm's static Pod)",
    "Documentation=https://etcd.io/docs/",
    "After=network-online.target",
    "Wants=network-online.target",
    "",
    "[Service]",
    "Type=notify",
    "User=" .. (opts.user or "etcd"),
    "Group=" .. (opts.user or "etcd"),
    "EnvironmentFile=" .. (opts.env_file or M.ENV_FILE),
    "ExecStart=" .. (opts.bin or M.BIN) .. "/etcd",
    "Restart=always",
    "RestartSec=" .. (opts.restart_sec or "5s"),
    "TimeoutStartSec=90s",
    "LimitNOFILE=" .. tostring(opts.nofile or 65536),
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  }, "\n")
end

--- version(host, bin) → "3.4.23" | nil: what BIN/etcd says it is.
function M.version(h, bin)
  h = inventory.host(h, "etcd_service.version")
  local r = remote.must(h, "if [ -x " .. q((bin or M.BIN) .. "/etcd") .. " ]; then " .. q((bin or M.BIN) .. "/etcd") ..
    " --version; fi", { read_only = true, what = "etcd --version" })
  return r.stdout:match("etcd Version:%s*(%S+)")
end

--- datadir_free(host, dir) → true | false, why. etcd's bbolt database is flock()ed by the etcd
--- that has it open: a lock taken here means no etcd holds the data directory.
function M.datadir_free(h, dir)
  h = inventory.host(h, "etcd_service.datadir_free")
  local db = dir .. "/member/snap/db"
  local r = remote.must(h, "[ -f " .. q(db) .. " ] || exit 2; flock --nonblock --exclusive " .. q(db) .. " true; echo $?",
    { read_only = true, what = "flock " .. db })
  local code = tonumber(r.stdout:match("(%d+)%s*$"))
  if code == 0 then return true end
  return false, "an etcd process still holds " .. db
end

-- Operations ----------------------------------------------------------------------------------

local function release_opts(version, opts, what)
  if type(version) ~= "string" or not version:match("^%d+%.%d+%.%d+$") then
    error(what .. ": version must be X.Y.Z, not " .. tostring(version), 3)
  end
  opts = opts or {}
  if type(opts.sha256) ~= "string" or not opts.sha256:match("^%x+$") or #opts.sha256 ~= 64 then
    error(what .. ": sha256 must be the tarball's 64 hex digits", 3)
  end
  local cache = opts.cache or M.CACHE
  local name = "etcd-v" .. version .. "-linux-amd64"
  return { bin = opts.bin or M.BIN, cache = cache, url = (opts.url or M.DOWNLOAD_URL):gsub("{version}", version),
    sha256 = opts.sha256, tarball = cache .. "/" .. name .. ".tar.gz", dir = cache .. "/" .. name }
end

-- Runs a script with sudo; a non-zero exit raises with the host, what, and its stderr.
local function script(h, lines, what, timeout)
  local r, err, msg = h:exec("sh -c " .. q(table.concat(lines, "\n")), { sudo = true, timeout = timeout or 600 })
  if not r then error(string.format("%s: %s: %s (%s)", h.name, what, err, msg or ""), 0) end
  if r.dry_run then return r end
  if r.code ~= 0 then
    error(string.format("%s: %s exited %d: %s", h.name, what, r.code, ((r.stderr ~= "" and r.stderr or r.stdout):gsub("%s+$", ""))), 0)
  end
  return r
end

--- staged(h, version, opts): the release's tarball in cache with the right checksum (downloaded
--- only when it is not: seed 003, IR-7) and unpacked beside it; nothing installed.
function M.stage(h, version, opts)
  local o = release_opts(version, opts, "etcd_service.stage")
  script(h, {
    "set -eu",
    "mkdir -p " .. q(o.cache),
    "if ! printf '%s  %s\\n' " .. q(o.sha256) .. " " .. q(o.tarball) .. " | sha256sum -c --status 2>/dev/null; then",
    "  curl -fsSL --retry 3 --connect-timeout 10 -o " .. q(o.tarball .. ".part") .. " " .. q(o.url),
    "  got=$(sha256sum " .. q(o.tarball .. ".part") .. " | cut -d' ' -f1)",
    "  if [ \"$got\" != " .. q(o.sha256) .. " ]; then rm -f " .. q(o.tarball .. ".part") ..
      "; echo \"checksum mismatch: the download has sha256 $got, want " .. o.sha256 .. "\" >&2; exit 3; fi",
    "  mv -f " .. q(o.tarball .. ".part") .. " " .. q(o.tarball),
    "fi",
    "rm -rf " .. q(o.dir) .. " && mkdir -p " .. q(o.dir),
    "tar -xzf " .. q(o.tarball) .. " -C " .. q(o.dir) .. " --strip-components=1",
    "[ -f " .. q(o.dir .. "/etcd") .. " ] || { echo 'the tarball has no etcd binary' >&2; exit 4; }",
  }, "fetching etcd " .. version .. " from " .. o.url)
  return o
end

--- install(h, from_dir, bin): etcd, etcdctl and etcdutl (those there are) from from_dir into bin,
--- each replaced by a rename (a running etcd keeps its old file).
function M.install(h, from_dir, bin)
  script(h, {
    "set -eu",
    "mkdir -p " .. q(bin or M.BIN),
    "for t in etcd etcdctl etcdutl; do [ -f " .. q(from_dir) .. "/$t ] || continue; " ..
      "install -m 0755 " .. q(from_dir) .. "/$t " .. q(bin or M.BIN) .. "/.$t.new && mv -f " .. q(bin or M.BIN) .. "/.$t.new " ..
      q(bin or M.BIN) .. "/$t; done",
  }, "installing etcd from " .. from_dir)
end

--- keep(h, bin, to_dir): the binaries now in bin copied to to_dir (the old ones, before an upgrade).
function M.keep(h, bin, to_dir)
  script(h, {
    "set -eu",
    "rm -rf " .. q(to_dir) .. " && mkdir -p " .. q(to_dir),
    "for t in etcd etcdctl etcdutl; do [ -f " .. q(bin or M.BIN) .. "/$t ] || continue; cp -p " .. q(bin or M.BIN) ..
      "/$t " .. q(to_dir) .. "/$t; done",
  }, "keeping the installed etcd in " .. to_dir)
end

--- release(version, {url, sha256, cache, bin}) → operation "etcd VERSION binaries": etcd and
--- etcdctl (and etcdutl, 3.5+) of the release in bin (M.stage, then M.install). A checksum that
--- does not match stops it with nothing installed.
function M.release(version, opts)
  local o = release_opts(version, opts, "etcd_service.release")
  return {
    name = "etcd " .. version .. " binaries",
    holds = function(h)
      local have = M.version(h, o.bin)
      return have == version, o.bin .. "/etcd is " .. (have or "not installed")
    end,
    apply = function(h)
      M.stage(h, version, opts)
      M.install(h, o.dir, o.bin)
    end,
  }
end

--- user(name) → operation "user NAME": a system user and group of that name (no login, no home
--- directory of its own).
function M.user(name)
  name = name or "etcd"
  if not name:match("^[a-z_][a-z0-9_%-]*$") then error("etcd_service.user: " .. name .. " is not a user name", 2) end
  return {
    name = "user " .. name,
    holds = function(h)
      local r = remote.must(h, "id -u " .. q(name) .. " >/dev/null 2>&1 && echo yes || echo no", { read_only = true, what = "id " .. name })
      return r.stdout:match("yes") ~= nil, "no user " .. name
    end,
    apply = function(h)
      remote.must(h, "useradd --system --user-group --no-create-home --home-dir /var/lib/etcd --shell /usr/sbin/nologin " ..
        q(name), { what = "useradd " .. name })
    end,
  }
end

--- keys_readable(files, group) → operation "etcd can read its keys": each key file group-owned by
--- group, mode 0640 (kubeadm writes them root 0600; `kubeadm certs renew` keeps the key files).
function M.keys_readable(files, group)
  group = group or "etcd"
  local quoted = {}
  for i, f in ipairs(files) do quoted[i] = q(f) end
  local list = table.concat(quoted, " ")
  return {
    name = "etcd can read its keys",
    holds = function(h)
      local r = remote.must(h, "stat -c '%G %a %n' " .. list .. "; for f in " .. list .. "; do runuser -u " .. q(group) ..
        " -- test -r \"$f\" || echo \"unreadable $f\"; done", { read_only = true, what = "stat of etcd's keys" })
      local bad = {}
      for line in r.stdout:gmatch("[^\n]+") do
        local g, mode, f = line:match("^(%S+) (%d+) (.+)$")
        if g and (g ~= group or mode ~= "640") then bad[#bad + 1] = string.format("%s is %s %s", f, tostring(g), tostring(mode)) end
        local u = line:match("^unreadable (.+)$")
        if u then bad[#bad + 1] = u .. " cannot be read by " .. group .. " (a directory above it closed?)" end
      end
      return #bad == 0, table.concat(bad, "; ")
    end,
    apply = function(h)
      remote.must(h, "chgrp " .. q(group) .. " " .. list .. " && chmod 0640 " .. list, { what = "chgrp/chmod of etcd's keys" })
    end,
  }
end

return M
