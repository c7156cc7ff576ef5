---@meta std.etcd_service
-- LuaCATS definitions for require "std.etcd_service": etcd as a systemd service on a
-- control-plane node, its settings carried over from kubeadm's static Pod (seed 003).

---@class std.etcd_service.Manifest
---@field file string
---@field flags table<string, string>  flag name (no dashes) → value
---@field order string[]               flag names as the manifest lists them
---@field image string

---@class std.etcd_service
local svc = {}

svc.MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
svc.ENV_FILE = "/etc/etcd/etcd.env"
svc.UNIT = "etcd.service"
svc.BIN = "/usr/local/bin"
svc.CACHE = "/var/cache/engine/etcd"
--- etcd's GitHub release tarballs; {version} is filled in.
svc.DOWNLOAD_URL = "https://github.com/etcd-io/etcd/releases/download/v{version}/etcd-v{version}-linux-amd64.tar.gz"

--- The etcd container's flags of a static Pod manifest; nil, "invalid", why otherwise.
---@param text string
---@return table<string, string>|nil flags, string[]|string order_or_err, table|string|nil doc_or_why
function svc.flags_of(text) end

--- The node's etcd manifest (default svc.MANIFEST), nil when absent; raises on a file that is not an etcd Pod. Yields.
---@param host engine.Host|string
---@param path? string
---@return std.etcd_service.Manifest|nil
function svc.manifest(host, path) end

--- "listen-client-urls" → "ETCD_LISTEN_CLIENT_URLS".
---@param flag string
---@return string
function svc.env_name(flag) end

--- The EnvironmentFile: every flag as its ETCD_ variable in the manifest's order, overrides applied (false drops one).
---@param flags table<string, string>
---@param order string[]
---@param overrides? table<string, string|false>
---@return string
function svc.env_text(flags, order, overrides) end

--- An EnvironmentFile read back as flags: ETCD_LISTEN_CLIENT_URLS is listen-client-urls.
---@param text string
---@return table<string, string>
function svc.flags_of_env(text) end

---@class std.etcd_service.UnitTextOptions
---@field bin? string  (default: etcd_service.BIN)
---@field env_file? string  (default: etcd_service.ENV_FILE)
---@field user? string  (default: "etcd")
---@field restart_sec? string  (default: "5s")
---@field nofile? integer  (default: 65536)

--- etcd.service: Type=notify, User/Group, EnvironmentFile, Restart=always, RestartSec, LimitNOFILE.
---@param opts? std.etcd_service.UnitTextOptions
---@return string
function svc.unit_text(opts) end

--- What BIN/etcd --version says ("3.4.23"), nil when not installed. Yields.
---@param host engine.Host|string  an inventory host or its name
---@param bin string|nil  where the binaries are (default: etcd_service.BIN)
---@return string|nil
function svc.version(host, bin) end

--- No etcd holds the data directory (its bbolt database's flock can be taken). Yields.
---@param host engine.Host|string  an inventory host or its name
---@param dir string
---@return boolean, string|nil
function svc.datadir_free(host, dir) end

--- The newest etcd minor kubeadm ships for each Kubernetes minor: a newer one is refused.
svc.NEWEST_ETCD_MINOR = { ["1.33"] = "3.5", ["1.34"] = "3.6" }
svc.MIN_FOR_36 = "3.5.20"
--- Settings a minor no longer starts with, as {ENV_NAME, value or nil for any}.
svc.REMOVED = { ["3.5"] = { { "ETCD_LOGGER", "capnslog" } } }

--- The lines of an EnvironmentFile that etcd `target` refuses to start with.
---@param env_text string
---@param target? string
---@return string[]
function svc.removed_settings(env_text, target) end

--- Why the members' versions cannot go to target on this Kubernetes: one minor at a time, no
--- downgrade, 3.5.20+ before 3.6, no etcd minor newer than svc.NEWEST_ETCD_MINOR says. Empty: allowed.
---@param running string[]
---@param target string
---@param kubernetes? string  "v1.33.1"
---@return string[]
function svc.upgrade_problems(running, target, kubernetes) end

--- The Kubernetes version's minor ("1.34") and the etcd minor kubeadm ships for it ("3.6"; past
--- svc.NEWEST_ETCD_MINOR, its last row). nil for a version of another form.
---@param kubernetes string  "v1.34.3"
---@return string? minor
---@return string? etcd_minor
function svc.etcd_minor_for(kubernetes) end

--- A sentence when an etcd kubeadm does not upgrade (under systemd) runs a minor older than the
--- one kubeadm ships for that Kubernetes version (upgrade it first, as `kubeadm upgrade plan`
--- lists it); nil when none does.
---@param running string[]  the members' versions
---@param kubernetes string  the target, "v1.34.3"
---@return string?
function svc.behind(running, kubernetes) end

---@class std.etcd_service.StageOptions
---@field sha256 string
---@field url? string
---@field cache? string
---@field bin? string

---@class std.etcd_service.StageResult
---@field bin string
---@field cache string
---@field url string
---@field sha256 string
---@field tarball string
---@field dir string

--- The release's tarball in cache with the right checksum (downloaded only if not) and unpacked; nothing installed. Yields.
---@param host engine.Host|string  an inventory host or its name
---@param version string
---@param opts std.etcd_service.StageOptions
---@return std.etcd_service.StageResult
function svc.stage(host, version, opts) end

--- etcd, etcdctl, etcdutl from from_dir into bin, each replaced by a rename. Yields.
---@param host engine.Host|string  an inventory host or its name
---@param from_dir string
---@param bin string|nil  where the binaries are (default: etcd_service.BIN)
function svc.install(host, from_dir, bin) end

--- The binaries now in bin copied to to_dir (kept before an upgrade). Yields.
---@param host engine.Host|string  an inventory host or its name
---@param bin string|nil  where the binaries are (default: etcd_service.BIN)
---@param to_dir string
function svc.keep(host, bin, to_dir) end

---@class std.etcd_service.ReleaseOptions
---@field sha256 string
---@field url? string
---@field cache? string
---@field bin? string

--- Operation "etcd VERSION binaries": the release's etcd/etcdctl(/etcdutl) in bin; the tarball
--- downloaded once per node into cache and checked against sha256.
---@param version string
---@param opts std.etcd_service.ReleaseOptions
---@return std.ops.Operation
function svc.release(version, opts) end

--- Operation "user NAME": a system user and group, no login.
---@param name string
---@return std.ops.Operation
function svc.user(name) end

--- Operation "etcd can read its keys": each key file group-owned by group, mode 0640.
---@param files string[]
---@param group? string
---@return std.ops.Operation
function svc.keys_readable(files, group) end

return svc
