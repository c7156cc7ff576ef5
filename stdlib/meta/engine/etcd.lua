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

---@class engine.etcd.ConfigureOptions
---@field endpoints? string[]
---@field ca_file? string
---@field cert_file? string
---@field key_file? string
---@field ca_data? string
---@field cert_data? string
---@field key_data? string
---@field timeout? number|string  seconds per request (default: as configured, 10 s)

--- Endpoints and the client certificate (default: kubeadm's /etc/kubernetes/pki/etcd/ca.crt and
--- healthcheck-client.crt/key). *_data hold PEM in memory (read from a node over SSH).
---@param opts engine.etcd.ConfigureOptions
function etcd.configure(opts) end
---@return string[]
function etcd.endpoints() end

---@class engine.etcd.FromInventoryOptions
---@field port? integer  (default: 2379)
---@field scheme? string  (default: "https")

--- Endpoints from inventory hosts (etcd_access_address / ansible_host / name, etcd_client_port / port).
---@param hosts engine.Host[]
---@param opts? engine.etcd.FromInventoryOptions
---@return string[]
function etcd.from_inventory(hosts, opts) end
---@param endpoint string  "https://10.0.0.1:2379"
---@return engine.etcd.Status|nil, string|nil, string|nil
function etcd.status(endpoint) end
---@param endpoint string  "https://10.0.0.1:2379"
---@return engine.etcd.Member[]|nil, string|nil, string|nil
function etcd.members(endpoint) end

---@class engine.etcd.MemberAddResult
---@field id string                  the new member's ID
---@field members engine.etcd.Member[]  the members after it (the new one unnamed until it starts)
---@field dry_run? boolean

--- Removes a member (etcdctl member remove). A write: the run's lease is checked first; said, not
--- done, under --dry-run. Yields.
---@param id string  the member's ID (decimal)
---@param endpoint? string  "https://10.0.0.1:2379" (default: the first configured)
---@return true|nil, string|nil, string|nil
function etcd.member_remove(id, endpoint) end
--- Adds a member by its peer URLs (etcdctl member add): it joins when an etcd started with
--- --initial-cluster-state=existing and those URLs comes up. Yields.
---@param peer_urls string[]
---@param endpoint? string
---@return engine.etcd.MemberAddResult|nil, string|nil, string|nil
function etcd.member_add(peer_urls, endpoint) end
--- What `etcdctl endpoint health` asks. An alarm is not ill health here (etcd's /health says false
--- under any; then a linearizable read answers, etcdctl's own test): alarms() reports it.
---@param endpoint string  "https://10.0.0.1:2379"
---@return true|nil, string|nil, string|nil
function etcd.health(endpoint) end

---@class engine.etcd.ClusterHealthResult
---@field healthy boolean
---@field leader? string
---@field members table[]
---@field alarms table[]
---@field problems string[]

--- Every member answers, exactly one leader, no alarms (each a problem on its member's name: "alarm
--- NOSPACE on member cp2 (ID)"). With endpoints, each member is asked at the one of them that
--- answers for it (tunnels); without, at its advertised client URL. A member that answers for
-- another cluster than the member list's (a fork: the same member ID, another cluster ID, as a
-- member that lost its data under a manifest naming itself alone starts) is a problem:
-- "cp1 unhealthy (forked: it answers as another cluster ...)".
---@param endpoints? string[]
---@return engine.etcd.ClusterHealthResult|nil, string|nil, string|nil
function etcd.cluster_health(endpoints) end

---@class engine.etcd.SnapshotResult
---@field size integer
---@field sha256 string
---@field revision integer

--- Streamed to path.part, the sha256 trailer checked, fsynced, renamed; nothing at path on failure.
---@param endpoint string  "https://10.0.0.1:2379"
---@param path string
---@return engine.etcd.SnapshotResult|nil, string|nil, string|nil
function etcd.snapshot(endpoint, path) end

---@class engine.etcd.PruneResult
---@field removed string[]  paths, oldest first (under --dry-run: what would be)
---@field kept string[]  the one just taken, then the newest

--- Removes the etcd-*.db snapshots directly in dir beyond the keep newest (by time); newest, the
--- one just taken, is always kept and counts. Nothing else is touched (a .part, a symlink, another
--- name); under --dry-run nothing is removed.
---@param dir string
---@param keep integer  1 or more
---@param newest? string  the snapshot just taken
---@return engine.etcd.PruneResult|nil, string|nil, string|nil
function etcd.prune_snapshots(dir, keep, newest) end
---@class engine.etcd.SnapshotFile
---@field size integer
---@field sha256 string  of the whole file

--- A snapshot on this machine read whole, its sha256 trailer checked (what a restore checks); a database copied out of a data directory has none. Reads only.
---@param path string
---@return engine.etcd.SnapshotFile|nil, string|nil, string|nil  nil, "not found" | "corrupt", message
function etcd.snapshot_file(path) end

---@param endpoint string  "https://10.0.0.1:2379"
---@return true|nil, string|nil, string|nil
function etcd.defrag(endpoint) end

---@class engine.etcd.DefragAllOptions
---@field leader_last? boolean
---@field pause? number
---@field gate? fun(endpoint: string): boolean|nil, string|nil  asked before each member: true to go on

---@class engine.etcd.DefragAllResult
---@field endpoint string
---@field member string
---@field started number
---@field finished number
---@field leader boolean

--- One member at a time, the leader last; before the first member and each next one, every member
--- healthy through these endpoints and one leader known (and gate passed), else it stops. A NOSPACE
--- alarm does not stop it (defragmenting is how the space comes back); any other alarm does.
---@param endpoints? string[]
---@param opts? engine.etcd.DefragAllOptions
---@return engine.etcd.DefragAllResult[]|nil, string|nil, string|nil, table|nil
function etcd.defrag_all(endpoints, opts) end

---@class engine.etcd.AlarmsResult
---@field member_id string
---@field alarm string

---@param endpoint string  "https://10.0.0.1:2379"
---@return engine.etcd.AlarmsResult[]|nil, string|nil, string|nil
function etcd.alarms(endpoint) end
---@param alarm string
---@param endpoint string  "https://10.0.0.1:2379"
---@return true|nil, string|nil, string|nil
function etcd.disarm(alarm, endpoint) end

---@class engine.etcd.CompactOptions
---@field physical? boolean

---@param revision integer
---@param opts? engine.etcd.CompactOptions
---@return true|nil, string|nil, string|nil
function etcd.compact(revision, opts) end

---@class engine.etcd.GetOptions
---@field prefix? boolean

---@param key string
---@param opts? engine.etcd.GetOptions
---@return string|table<string,string>|nil, string|nil, string|nil
function etcd.get(key, opts) end
---@param key string
---@param value any
---@return true|nil, string|nil, string|nil
function etcd.put(key, value) end

---@class engine.etcd.DeleteOptions
---@field prefix? boolean

---@param key string
---@param opts? engine.etcd.DeleteOptions
---@return integer|nil, string|nil, string|nil
function etcd.delete(key, opts) end
--- Every member is named after an inventory host (its etcd_member_name var, else its name) and
--- every host has a member.
---@param hosts engine.Host[]
---@return true|nil ok, string|nil word "mismatch", or etcd's word, string|nil message
function etcd.members_match(hosts) end

---@class engine.etcd.ViaNodeOptions
---@field address? string
---@field port? integer
---@field pki? string
---@field ca? string
---@field cert? string
---@field key? string
---@field sudo? boolean

--- A tunnel to the node's address:port (default 127.0.0.1:2379) and its client certificate read over SSH into memory.
---@param host engine.Host|string  an inventory host or its name
---@param opts? engine.etcd.ViaNodeOptions
---@return engine.ssh.Tunnel|nil, string|nil, string|nil
function etcd.via_node(host, opts) end

---@class engine.etcd.SnapshotViaSshOptions
---@field address? string
---@field port? integer
---@field pki? string
---@field ca? string
---@field cert? string
---@field key? string
---@field sudo? boolean
---@field remote_dir? string  (default: "/var/tmp")
---@field timeout? number|string  (default: 600 seconds)

---@class engine.etcd.SnapshotViaSshResult
---@field size integer
---@field sha256 string

--- etcdctl snapshot save on the node, downloaded and checked against the node's sha256sum.
---@param host engine.Host|string  an inventory host or its name
---@param path string
---@param opts? engine.etcd.SnapshotViaSshOptions
---@return engine.etcd.SnapshotViaSshResult|nil, string|nil, string|nil
function etcd.snapshot_via_ssh(host, path, opts) end

return etcd
