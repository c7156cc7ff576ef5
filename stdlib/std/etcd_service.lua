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

--- release(version, {url, sha256, cache, bin}) → operation "etcd VERSION binaries": etcd and
--- etcdctl (and etcdutl, 3.5+) of the release in bin. The tarball is downloaded once per node into
--- cache and kept: one there with the right checksum is not downloaded again (seed 003, IR-7). A
--- checksum that does not match stops it with nothing installed.
function M.release(version, opts)
  if type(version) ~= "string" or not version:match("^%d+%.%d+%.%d+$") then
    error("etcd_service.release: version must be X.Y.Z, not " .. tostring(version), 2)
  end
  opts = opts or {}
  if type(opts.sha256) ~= "string" or not opts.sha256:match("^%x+$") or #opts.sha256 ~= 64 then
    error("etcd_service.release: sha256 must be the tarball's 64 hex digits", 2)
  end
  local bin, cache = opts.bin or M.BIN, opts.cache or M.CACHE
  local url = (opts.url or M.DOWNLOAD_URL):gsub("{version}", version)
  local name = "etcd-v" .. version .. "-linux-amd64"
  return {
    name = "etcd " .. version .. " binaries",
    holds = function(h)
      local have = M.version(h, bin)
      return have == version, bin .. "/etcd is " .. (have or "not installed")
    end,
    apply = function(h)
      local tarball = cache .. "/" .. name .. ".tar.gz"
      local dir = cache .. "/" .. name
      local script = table.concat({
        "set -eu",
        "mkdir -p " .. q(cache) .. " " .. q(bin),
        "if ! printf '%s  %s\\n' " .. q(opts.sha256) .. " " .. q(tarball) .. " | sha256sum -c --status 2>/dev/null; then",
        "  curl -fsSL --retry 3 --connect-timeout 10 -o " .. q(tarball .. ".part") .. " " .. q(url),
        "  got=$(sha256sum " .. q(tarball .. ".part") .. " | cut -d' ' -f1)",
        "  if [ \"$got\" != " .. q(opts.sha256) .. " ]; then rm -f " .. q(tarball .. ".part") ..
          "; echo \"checksum mismatch: the download has sha256 $got, want " .. opts.sha256 .. "\" >&2; exit 3; fi",
        "  mv -f " .. q(tarball .. ".part") .. " " .. q(tarball),
        "fi",
        "rm -rf " .. q(dir) .. " && mkdir -p " .. q(dir),
        "tar -xzf " .. q(tarball) .. " -C " .. q(dir) .. " --strip-components=1",
        "[ -f " .. q(dir .. "/etcd") .. " ] || { echo 'the tarball has no etcd binary' >&2; exit 4; }",
        "for t in etcd etcdctl etcdutl; do [ -f " .. q(dir) .. "/$t ] || continue; " ..
          "install -m 0755 " .. q(dir) .. "/$t " .. q(bin) .. "/.$t.new && mv -f " .. q(bin) .. "/.$t.new " .. q(bin) .. "/$t; done",
      }, "\n")
      local r, err, msg = h:exec("sh -c " .. q(script), { sudo = true, timeout = 600 })
      if not r then error(string.format("%s: installing etcd %s: %s (%s)", h.name, version, err, msg or ""), 0) end
      if r.dry_run then return end
      if r.code ~= 0 then
        error(string.format("%s: installing etcd %s from %s exited %d: %s", h.name, version, url, r.code,
          (r.stderr ~= "" and r.stderr or r.stdout):gsub("%s+$", "")), 0)
      end
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
      local r = remote.must(h, "stat -c '%G %a %n' " .. list, { read_only = true, what = "stat of etcd's keys" })
      local bad = {}
      for line in r.stdout:gmatch("[^\n]+") do
        local g, mode, f = line:match("^(%S+) (%d+) (.+)$")
        if g ~= group or mode ~= "640" then bad[#bad + 1] = string.format("%s is %s %s", f, tostring(g), tostring(mode)) end
      end
      return #bad == 0, table.concat(bad, "; ")
    end,
    apply = function(h)
      remote.must(h, "chgrp " .. q(group) .. " " .. list .. " && chmod 0640 " .. list, { what = "chgrp/chmod of etcd's keys" })
    end,
  }
end

return M
