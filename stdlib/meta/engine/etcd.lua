---@meta engine.etcd
-- LuaCATS definitions for require "engine.etcd". Every call yields. Expected failures return nil, err,
-- message with err one of "timeout", "unreachable", "failed", "malformed", "unhealthy",
-- "not found", and for snapshots "cut" and "corrupt".

---@class engine.etcd.Status
---@field endpoint string
---@field version string
---@field db_size integer
---@field db_size_in_use integer
---@field leader string       member ID (a string: IDs exceed 2^63)
---@field member_id string
---@field cluster_id string
---@field raft_index integer
---@field raft_term integer
---@field revision integer
---@field errors string[]
---@field is_learner boolean

---@class engine.etcd.Member
---@field id string
---@field name string
---@field peer_urls string[]
---@field client_urls string[]
---@field is_learner boolean

local etcd = {}

--- Endpoints and the client certificate (default: kubeadm's /etc/kubernetes/pki/etcd/ca.crt and
--- healthcheck-client.crt/key). *_data hold PEM in memory (read from a node over SSH).
---@param opts {endpoints?: string[], ca_file?: string, cert_file?: string, key_file?: string, ca_data?: string, cert_data?: string, key_data?: string, timeout?: number|string}
function etcd.configure(opts) end
---@return string[]
function etcd.endpoints() end
--- Endpoints from inventory hosts (etcd_access_address / ansible_host / name, etcd_client_port / port).
---@param hosts engine.Host[]
---@param opts? {port?: integer, scheme?: string}
---@return string[]
function etcd.from_inventory(hosts, opts) end
---@param endpoint string  "https://10.0.0.1:2379"
---@return engine.etcd.Status|nil, string|nil, string|nil
function etcd.status(endpoint) end
---@param endpoint string  "https://10.0.0.1:2379"
---@return engine.etcd.Member[]|nil, string|nil, string|nil
function etcd.members(endpoint) end
---@param endpoint string  "https://10.0.0.1:2379"
---@return true|nil, string|nil, string|nil
function etcd.health(endpoint) end
--- Every member answers, exactly one leader, no alarms. With endpoints, each member is asked at
--- the one of them that answers for it (tunnels); without, at its advertised client URL.
---@param endpoints? string[]
---@return {healthy: boolean, leader?: string, members: table[], alarms: table[], problems: string[]}|nil, string|nil, string|nil
function etcd.cluster_health(endpoints) end
--- Streamed to path.part, the sha256 trailer checked, fsynced, renamed; nothing at path on failure.
---@param endpoint string  "https://10.0.0.1:2379"
---@param path string
---@return {size: integer, sha256: string, revision: integer}|nil, string|nil, string|nil
function etcd.snapshot(endpoint, path) end
---@param endpoint string  "https://10.0.0.1:2379"
---@return true|nil, string|nil, string|nil
function etcd.defrag(endpoint) end
--- One member at a time, the leader last; before the first member and each next one, every member
--- healthy through these endpoints and one leader known (and gate passed), else it stops.
---@param endpoints? string[]
---@param opts? {leader_last?: boolean, pause?: number, gate?: fun(endpoint: string): boolean|nil, string|nil}
---@return {endpoint: string, member: string, started: number, finished: number, leader: boolean}[]|nil, string|nil, string|nil, table|nil
function etcd.defrag_all(endpoints, opts) end
---@param endpoint string  "https://10.0.0.1:2379"
---@return {member_id: string, alarm: string}[]|nil, string|nil, string|nil
function etcd.alarms(endpoint) end
---@param alarm string
---@param endpoint string  "https://10.0.0.1:2379"
---@return true|nil, string|nil, string|nil
function etcd.disarm(alarm, endpoint) end
---@param revision integer
---@param opts? {physical?: boolean}
---@return true|nil, string|nil, string|nil
function etcd.compact(revision, opts) end
---@param key string
---@param opts? {prefix?: boolean}
---@return string|table<string,string>|nil, string|nil, string|nil
function etcd.get(key, opts) end
---@param key string
---@param value any
---@return true|nil, string|nil, string|nil
function etcd.put(key, value) end
---@param key string
---@param opts? {prefix?: boolean}
---@return integer|nil, string|nil, string|nil
function etcd.delete(key, opts) end
--- Every member is named after an inventory host (its etcd_member_name var, else its name) and
--- every host has a member.
---@param hosts engine.Host[]
---@return true|nil ok, string|nil word "mismatch", or etcd's word, string|nil message
function etcd.members_match(hosts) end

--- A tunnel to the node's address:port (default 127.0.0.1:2379) and its client certificate read over SSH into memory.
---@param host engine.Host|string  an inventory host or its name
---@param opts? {address?: string, port?: integer, pki?: string, ca?: string, cert?: string, key?: string, sudo?: boolean}
---@return engine.ssh.Tunnel|nil, string|nil, string|nil
function etcd.via_node(host, opts) end
--- etcdctl snapshot save on the node, downloaded and checked against the node's sha256sum.
---@param host engine.Host|string  an inventory host or its name
---@param path string
---@param opts? {address?: string, port?: integer, pki?: string, ca?: string, cert?: string, key?: string, sudo?: boolean, remote_dir?: string, timeout?: number|string}
---@return {size: integer, sha256: string}|nil, string|nil, string|nil
function etcd.snapshot_via_ssh(host, path, opts) end

return etcd
