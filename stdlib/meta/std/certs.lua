---@meta std.certs
-- LuaCATS definitions for require "std.certs": the certificates of a kubeadm node, read only.

---@class std.certs.File
---@field name string     kubeadm's name: "apiserver", "etcd-server", "admin.conf", "kubelet.conf", "kubelet-client", "ca", ...
---@field file string     its path on the node
---@field cert? engine.tls.Certificate
---@field error? string   why it could not be read

---@class std.certs.Endpoint
---@field name string     "apiserver", "etcd-server", "etcd-peer", "kube-scheduler", "kube-controller-manager"
---@field endpoint string "10.0.0.1:6443"
---@field file? string    the file it should serve (none for the scheduler's and controller-manager's own)
---@field via? engine.Host
---@field cert? engine.tls.Certificate  what it serves
---@field error? string

---@class std.certs
local certs = {}
certs.CONTROL_PLANE_FILES = {}  ---@type string[]
certs.NODE_FILES = {}           ---@type string[]

---@class std.certs.FilesOptions
---@field control_plane? boolean

--- Every certificate kubeadm manages on the node (control_plane) and the kubelet's; no private key
--- leaves the node. Yields.
---@param host engine.Host|string  an inventory host or its name
---@param opts? std.certs.FilesOptions
---@return std.certs.File[]
function certs.files(host, opts) end

--- The endpoints of a control-plane node and the files they should serve.
---@param host engine.Host|string  an inventory host or its name
---@return std.certs.Endpoint[]
function certs.endpoints(host) end

---@class std.certs.ServedOptions
---@field timeout? number|string

--- The endpoints with what each serves (or why it could not be read). Yields.
---@param host engine.Host|string  an inventory host or its name
---@param opts? std.certs.ServedOptions
---@return std.certs.Endpoint[]
function certs.served(host, opts) end

return certs
