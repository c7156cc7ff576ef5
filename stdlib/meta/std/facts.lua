---@meta std.facts
-- LuaCATS definitions for require "std.facts": what a node or the cluster is, read and never
-- changed (--dry-run reads for real). A fact that cannot read the node raises naming the host; one
-- that reads the cluster returns nil, word, message. Every call yields.

---@class std.facts
local facts = {}
facts.MANIFESTS = "/etc/kubernetes/manifests"
facts.COMPONENTS = { "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler" }
facts.CONTROL_PLANE = { "kube-apiserver", "kube-controller-manager", "kube-scheduler" }

--- Every file the kubelet would read in the manifests directory, valid or not.
---@param host engine.Host|string  an inventory host or its name
---@return std.kubeadm.Manifest[]
function facts.static_pods(host) end
--- Files in the manifests directory that are not NAME.yaml of an expected component.
---@param host engine.Host|string  an inventory host or its name
---@param expected? string[]
---@return string[]
function facts.strays(host, expected) end
---@param host engine.Host|string  an inventory host or its name
---@param expected? string[]
---@return string[]  sentences; empty when the directory is clean
function facts.manifest_problems(host, expected) end
--- The control-plane components (kube-apiserver, kube-controller-manager, kube-scheduler) with no
--- NAME.yaml in the manifests directory: the kubelet runs none of them here. etcd is not among them
--- (it may run under systemd).
---@param host engine.Host|string  an inventory host or its name
---@param pods? std.kubeadm.Manifest[]  facts.static_pods(host), when already read
---@return string[]  sorted; empty when all three are there
function facts.missing_manifests(host, pods) end
--- {component = {image, ready}} from the node's mirror pods (a host or its name).
---@param node string|engine.k8s.Object  a node name or Node object
---@return table<string, {image: string, ready: boolean}>|nil, string|nil, string|nil
function facts.running_images(node) end
--- Every static pod runs its manifest's image and is ready (with a version: the control plane's
--- manifests name it).
---@param host engine.Host|string  an inventory host or its name
---@param version? string
---@return true|nil ok, string|nil word "mismatch", or the API's word, string|nil message
function facts.static_pods_match(host, version) end
--- "v1.33.1": the vX.Y.Z tag of an image reference (a control-plane manifest's); nil for a
--- digest or a tag of another shape.
---@param image string|nil
---@return string|nil
function facts.image_version(image) end
--- The exact package version the node's apt source offers for each package at the version
--- ({kubelet = "1.34.3-1.1"}; a package it does not offer is absent), from one apt-cache madison.
---@param host engine.Host|string  an inventory host or its name
---@param pkgs string[]
---@param version string
---@return table<string,string>
function facts.offers(host, pkgs, version) end
--- Every upstream version of the package the node's apt source offers, newest first ({"1.33.5",
--- "1.33.1"}; pkgs.k8s.io: the one minor the source names), from apt-cache madison.
---@param host engine.Host|string  an inventory host or its name
---@param pkg string
---@return string[]
function facts.versions(host, pkg) end
--- The exact package version the node's apt source offers for the version ("1.34.3-1.1"), or nil.
---@param host engine.Host|string  an inventory host or its name
---@param pkg string
---@param version string
---@return string|nil
function facts.offered(host, pkg, version) end
--- The installed version ("1.34.3-1.1"), or false.
---@param host engine.Host|string  an inventory host or its name
---@param pkg string
---@return string|false
function facts.installed(host, pkg) end
--- Every package installed at the version, or false and which are not; then, from the same
--- apt-cache policy's version table, the exact version of each package a repository offers
--- ({kubeadm = "1.34.3-1.1"}, absent: none); then what is installed ({kubeadm = "1.33.1-1.1"},
--- false: not installed).
---@param host engine.Host|string  an inventory host or its name
---@param pkgs string[]
---@param version string
---@return boolean, string|nil, table<string, string>, table<string, string|false>
function facts.installed_at(host, pkgs, version) end
--- installed_at's answer from the output of an `apt-cache policy PKGS` already run (an install's
--- own command ends with one, so the change is checked without asking the node again).
---@param policy_text string
---@param pkgs string[]
---@param version string
---@return boolean, string|nil, table<string, string>
function facts.installed_at_in(policy_text, pkgs, version) end
--- The text of the node's Kubernetes apt source (/etc/apt/sources.list.d/kubernetes.list).
---@param host engine.Host|string  an inventory host or its name
---@return string
function facts.apt_source(host) end
--- "v1.34": the minor the node's pkgs.k8s.io apt source names, or nil.
---@param host engine.Host|string  an inventory host or its name
---@return string|nil
function facts.apt_minor(host) end
--- "v1.34": the minor an apt source file's text names (pkgs.k8s.io), or nil.
---@param text string
---@return string|nil
function facts.apt_minor_in(text) end
--- Every package's .deb at its exact version in the node's /var/cache/apt/archives (downloaded,
--- not yet unpacked), or false and "kubelet 1.34.3-1.1 not in /var/cache/apt/archives".
---@param host engine.Host|string  an inventory host or its name
---@param versions table<string, string>  {kubelet = "1.34.3-1.1"}: exact package versions
---@return boolean, string|nil
function facts.archived(host, versions) end
--- archived's answer from a listing of the archives already read (`ls -1`, one file a line).
---@param listing string
---@param versions table<string, string>
---@return boolean, string|nil
function facts.archived_in(listing, versions) end
--- The apt source apt_minor reads.
facts.APT_SOURCE = "/etc/apt/sources.list.d/kubernetes.list"
--- k8s.node_info of the node (a host or its name).
---@param node string|engine.k8s.Object  a node name or Node object
---@return engine.k8s.NodeInfo|nil, string|nil, string|nil
function facts.node(node) end

return facts
