---@meta std.kubeadm
-- LuaCATS definitions for require "std.kubeadm": a kubeadm cluster's nodes over SSH (sudo). Every
-- call yields. Commands that fail raise "HOST: WHAT exited N: <end of stderr>".

---@class std.kubeadm.Manifest
---@field file string          the file name in /etc/kubernetes/manifests
---@field name? string         metadata.name of the pod it defines (nil: not a Pod manifest)
---@field image? string        its first container's image
---@field images? string[]
---@field error? string        why it is not a valid manifest

local kubeadm = {}
kubeadm.MANIFESTS = "/etc/kubernetes/manifests"
kubeadm.COMPONENTS = { "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler" }
kubeadm.CONTROL_PLANE = { "kube-apiserver", "kube-controller-manager", "kube-scheduler" }

---@param cmd string
---@param opts? {timeout?: number|string, stream?: boolean, read_only?: boolean, what?: string}
---@return engine.ssh.ExecResult
function kubeadm.run(host, cmd, opts) end
---@param s string
---@return string  the text single-quoted for sh
function kubeadm.quote(s) end
---@return std.kubeadm.Manifest[]
function kubeadm.static_pods(host) end
---@param expected? string[]
---@return string[]  file names that are not NAME.yaml of an expected component
function kubeadm.strays(host, expected) end
---@param expected? string[]
---@return string[]  sentences; empty when the directory is clean
function kubeadm.manifest_problems(host, expected) end
---@param node string
---@return table<string, {image: string, ready: boolean}>|nil, string|nil, string|nil
function kubeadm.running_images(node) end
---@param version? string  with it, the control-plane manifests must name this version
---@return true|nil ok, string|nil word "mismatch", or the API's word, string|nil message
function kubeadm.static_pods_match(host, version) end
---@return string|nil  "1.34.3-1.1"
function kubeadm.package_version(host, pkg, version) end
function kubeadm.use_minor_repo(host, version) end
---@param packages string[]
function kubeadm.install(host, packages, version) end
--- systemctl daemon-reload, then restart the kubelet. Returns the node's clock (epoch seconds) just
--- before the restart, for k8s.wait_node's heartbeat_after; nil under --dry-run.
---@return number|nil
function kubeadm.restart_kubelet(host) end

return kubeadm
