---@meta std.kubeadm
-- LuaCATS definitions for require "std.kubeadm": the operations of a kubeadm node (std.ops) and the
-- changes they make, over SSH (sudo). Every call yields. Commands that fail raise "HOST: WHAT exited
-- N: <end of stderr>". The reads (static_pods, strays, manifest_problems, running_images,
-- static_pods_match, package_version) are std.facts' and stay here as aliases.

---@class std.kubeadm.Manifest
---@field file string          the file name in /etc/kubernetes/manifests
---@field name? string         metadata.name of the pod it defines (nil: not a Pod manifest)
---@field image? string        its first container's image
---@field images? string[]
---@field error? string        why it is not a valid manifest

local facts = require "std.facts"
local remote = require "std.remote"

---@class std.kubeadm
local kubeadm = {}
kubeadm.MANIFESTS = facts.MANIFESTS
kubeadm.COMPONENTS = facts.COMPONENTS
kubeadm.CONTROL_PLANE = facts.CONTROL_PLANE
kubeadm.run = remote.must
kubeadm.quote = remote.quote

-- The reads, as in the module: std.facts's, under their old names.
kubeadm.static_pods = facts.static_pods
kubeadm.strays = facts.strays
kubeadm.manifest_problems = facts.manifest_problems
kubeadm.running_images = facts.running_images
kubeadm.static_pods_match = facts.static_pods_match
kubeadm.package_version = facts.offered

--- Points the node's pkgs.k8s.io apt source at the version's minor and updates the package lists;
--- returns the source file's text as it is afterwards (read by the same command).
---@param host engine.Host|string  an inventory host or its name
---@param version string
---@return string
function kubeadm.use_minor_repo(host, version) end
--- Installs each package at the version over a hold (`apt-get install --allow-change-held-packages`)
--- and holds it; returns `apt-cache policy PACKAGES` as it is afterwards (run by the same command).
---@param host engine.Host|string  an inventory host or its name
---@param packages string[]
---@param version string
---@param offers? table<string, string>  the exact versions facts.installed_at saw offered; apt-cache madison asks when one is missing
---@return string
function kubeadm.install(host, packages, version, offers) end
--- Fetches each package's .deb at the version into /var/cache/apt/archives (`apt-get install
--- --download-only --allow-change-held-packages`): nothing unpacked, no hold changed. Returns the
--- archives' listing afterwards (`ls -1`, run by the same command) and the exact versions asked for.
---@param host engine.Host|string  an inventory host or its name
---@param packages string[]
---@param version string
---@param offers? table<string, string>  the exact versions facts.installed_at saw offered; apt-cache madison asks when one is missing
---@return string, table<string, string>
function kubeadm.download(host, packages, version, offers) end

---@class std.kubeadm.ApiThroughOptions
---@field kubeconfig_data? string  a kubeconfig held in memory (a node's admin.conf); default: the run's

--- engine.k8s reaches the API through an SSH tunnel to the first of cps whose own API server answers
--- (seed 002: the controller's route to :6443 gone, SSH to the nodes still up), with the run's
--- credentials or opts.kubeconfig_data, the certificate checked against "kubernetes". When none
--- answers, the kubeconfig's own route is put back: nil, "unreachable", what each node said. Close
--- the tunnel to end the detour (the client keeps the tunnel's address: k8s.configure{} to go back).
---@param cps (engine.Host|string)[]  control-plane nodes, tried in order
---@param opts? std.kubeadm.ApiThroughOptions
---@return engine.ssh.Tunnel|nil, string|nil, string|nil  the tunnel and the node it goes through
function kubeadm.api_through(cps, opts) end

--- systemctl daemon-reload, then restart the kubelet. Returns the node's clock (epoch seconds) just
--- before the restart, for k8s.wait_node's heartbeat_after; nil under --dry-run. Marks the Node first
--- (annotation engine.dev/kubelet-restarted: time and run), so the Ready flap it causes shows as
--- NodeInfo.flapped_by and a later upgrade's quiet_hours does not count it.
---@param host engine.Host|string  an inventory host or its name
---@return number|nil
function kubeadm.restart_kubelet(host) end

---@class std.kubeadm.RestartReadyOptions
---@field timeout? number|string  for the Node's Ready after the restart (default 600 s)
---@field version? string         the kubelet version the Node must report ("v1.34.3")
---@field hint? string            said after the reason when it is not Ready in time

--- restart_kubelet, then the Node waited for: Ready (at version, when given), with a status the new
--- kubelet posted. Returns the Node; nil under --dry-run. Raises naming the node when it is not.
---@param host engine.Host|string
---@param opts? std.kubeadm.RestartReadyOptions
---@return engine.k8s.NodeInfo|nil
function kubeadm.restart_kubelet_ready(host, opts) end

--- Run first: nil when the kubeconfig's route to the API answers; else, when a control-plane node's own API server answers over SSH, the tunnel (api_through) and the node, said in one sentence, and every API call after it goes that way; else nil, "unreachable", why.
---@param cps (engine.Host|string)[]
---@return engine.ssh.Tunnel|nil, string|nil, string|nil
function kubeadm.reach_api(cps) end

--- The marks restart_kubelet could not write (the API did not answer then), written now with the time of each restart. Returns the node names marked; those still refused stay for a later call.
---@return string[]
function kubeadm.mark_restarts() end

--- Operation "apt repository": the node's apt source names the version's minor.
---@param version string
---@return std.ops.Operation
function kubeadm.apt_repository(version) end
--- Operation (named `name`, default "packages"): each package installed at the version and held.
---@param pkgs string[]
---@param version string
---@param name? string
---@return std.ops.Operation
function kubeadm.packages(pkgs, version, name) end
--- Operation (named `name`, default "packages downloaded"): each package either installed at the
--- version already or its .deb at the version in apt's archives (facts.archived), so that a later
--- install unpacks without fetching; k8s-upgrade prepares the kubelet and kubectl so ahead of a
--- node's turn, while the node still serves.
---@param pkgs string[]
---@param version string
---@param name? string
---@return std.ops.Operation
function kubeadm.downloaded(pkgs, version, name) end

---@class std.kubeadm.UpgradedOptions
---@field timeout? number|string  for the whole kubeadm command (the backstop)
---@field control_plane? boolean
---@field component_timeout? number|string  kubeadm's own wait for each upgraded static pod, passed in an UpgradeConfiguration (kubeadm.k8s.io/v1beta4 timeouts.upgradeManifests; the version must be 1.31 or later); default: kubeadm's (5 minutes)

--- Operation "kubeadm upgrade apply" or "kubeadm upgrade node": on a control-plane node it holds
--- once its static pods run the version; a worker's always runs (kubeadm upgrade node is safe again).
---@param how "apply"|"node"
---@param version string
---@param opts? std.kubeadm.UpgradedOptions
---@return std.ops.Operation
function kubeadm.upgraded(how, version, opts) end

---@class std.kubeadm.KubeletAtOptions
---@field timeout? number|string  (default: 600 seconds)

--- Operation "restart kubelet": the node Ready with its kubelet at the version (restart, then wait).
---@param version string
---@param opts? std.kubeadm.KubeletAtOptions
---@return std.ops.Operation
function kubeadm.kubelet_at(version, opts) end

---@class std.kubeadm.StaticPodsAtOptions
---@field timeout? number|string  (default: 600 seconds)

--- Operation "static pods at target" (no version: "static pods run their manifests"): waits until
--- every static pod runs its manifest's image and is ready.
---@param version? string
---@param opts? std.kubeadm.StaticPodsAtOptions
---@return std.ops.Operation
function kubeadm.static_pods_at(version, opts) end

return kubeadm
