---@meta engine.ssh
-- LuaCATS definitions for require "engine.ssh" and the SSH methods of hosts.

---@alias engine.ssh.Error "timeout"|"refused"|"unreachable"|"auth failed"|"host key unknown"|"host key changed"|"closed"|"sudo failed"|"weak crypto"|"not found"|"permission denied"|"failed"

---@class engine.ssh.ExecOptions
---@field sudo? boolean             run through sudo -n (default: the inventory's ansible_become, else false)
---@field sudo_user? string         run as this user (implies sudo; default: "root")
---@field sudo_password? string     secret; sent on stdin, never on argv or in a log (implies sudo; default: ansible_become_password)
---@field env? table<string, string|number>  exported before the command
---@field stdin? string             written to the command's stdin, then EOF
---@field cwd? string               directory to run in
---@field timeout? number|string    seconds or "90s"; the result is nil, "timeout" (default: none)
---@field stream? boolean           log each output line as it arrives, with the host prefix (default: false)
---@field max_output? integer       bytes kept per stream; the rest is read and dropped (default: 64 MiB)
---@field read_only? boolean        runs even under --dry-run (default: false)

---@class engine.ssh.ExecResult
---@field code integer      exit status; -1 when killed by a signal
---@field signal? string    "KILL", "TERM", ... when killed by a signal
---@field stdout string
---@field stderr string
---@field duration number   seconds
---@field truncated? boolean  max_output was reached
---@field dry_run? boolean  --dry-run: the command was shown, not run

---@class engine.ssh.PutOptions
---@field mode? integer|string   permission bits, 0644 or "0644" (default: 0644)
---@field owner? string          needs sudo
---@field group? string          needs sudo
---@field sudo? boolean
---@field sudo_password? string

---@class engine.ssh.FileInfo
---@field size integer
---@field mode integer
---@field uid integer
---@field gid integer
---@field mtime integer
---@field type "file"|"dir"|"link"|"other"

---@class engine.Host
local Host = {}

--- Runs a command over the host's SSH session. A non-zero exit is a result, not an error. Yields.
---@param cmd string
---@param opts? engine.ssh.ExecOptions
---@return engine.ssh.ExecResult|nil result, engine.ssh.Error|nil err, string|nil message
function Host:exec(cmd, opts) end

---@class engine.ssh.UploadResult
---@field bytes integer

--- Uploads a local file atomically (temporary name, fsync, rename on the node). Yields.
---@param local_path string
---@param remote_path string
---@param opts? engine.ssh.PutOptions
---@return engine.ssh.UploadResult|nil, engine.ssh.Error|nil, string|nil
function Host:upload(local_path, remote_path, opts) end

---@class engine.ssh.WriteFileResult
---@field bytes integer

--- Writes a string to a remote file atomically. Yields.
---@param remote_path string
---@param content string
---@param opts? engine.ssh.PutOptions
---@return engine.ssh.WriteFileResult|nil, engine.ssh.Error|nil, string|nil
function Host:write_file(remote_path, content, opts) end

---@class engine.ssh.DownloadResult
---@field bytes integer

---@class engine.ssh.DownloadOptions
---@field mode? integer|string

--- Downloads to local_path (via local_path.part; nothing is left there on failure). Yields.
---@param remote_path string
---@param local_path string
---@return engine.ssh.DownloadResult|nil, engine.ssh.Error|nil, string|nil
---@param opts? engine.ssh.DownloadOptions  the local file's mode (default: "0600")
function Host:download(remote_path, local_path, opts) end

---@class engine.ssh.ReadFileOptions
---@field max integer

--- Reads a remote file into a string (at most opts.max bytes, default 64 MiB). Yields.
---@param remote_path string
---@param opts? engine.ssh.ReadFileOptions
---@return string|nil, engine.ssh.Error|nil, string|nil
function Host:read_file(remote_path, opts) end

--- Yields.
---@param remote_path string
---@return engine.ssh.FileInfo|nil, engine.ssh.Error|nil, string|nil
function Host:stat(remote_path) end

--- true, false, or nil and an error when the host cannot be asked. Yields.
---@param remote_path string
---@return boolean|nil, engine.ssh.Error|nil, string|nil
function Host:exists(remote_path) end

local ssh = {}

---@class engine.ssh.Settings
---@field known_hosts? string           (default: ~/.ssh/known_hosts)
---@field host_key_policy? "strict"|"accept-new"|"off"  (default: "strict")
---@field config? string                an ssh_config file (default: ~/.ssh/config)
---@field identity_files? string[]      tried when nothing names a key (default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa)
---@field user? string                  when nothing names one (default: the local user)
---@field passphrase? string            secret: unlocks encrypted key files
---@field connect_timeout? number|string  for connect, handshake and auth (default: 10)
---@field max_handshakes? integer       connections being set up at once (default: 64)
---@field channels_per_host? integer    commands at once on one host (default: 8)
---@field keepalive? number|string      seconds between keepalives (at least 1), 0 for none (default: 15)
---@field keepalive_count? integer      intervals in a row with nothing from the server before it is "unreachable" (default: 3)
---@field idle_timeout? number|string   a session unused this long is closed; the next call reconnects. 0: kept to the end (default: 60)

--- text single-quoted for sh (the quoting exec itself uses): ssh.quote("it's") → 'it'\\''s'
---@param text string
---@return string
function ssh.quote(text) end

--- Settings for connections made from now on.
---@param settings engine.ssh.Settings
function ssh.configure(settings) end

---@class engine.ssh.Tunnel
---@field port integer   the local port on 127.0.0.1
---@field host string    "127.0.0.1"
---@field last_error? string  why the latest forwarded connection failed (the node could not connect, ...)
local Tunnel = {}
--- Stops accepting connections (also at the end of a <close> scope and of the run).
function Tunnel:close() end

--- Forwards a local 127.0.0.1 port through the host to remote_host:remote_port, as ssh -L. Yields.
---@param host engine.Host|string
---@param remote_host string
---@param remote_port integer
---@return engine.ssh.Tunnel|nil, engine.ssh.Error|nil, string|nil
function ssh.tunnel(host, remote_host, remote_port) end

--- Same as host:exec, with the host as first argument.
---@param host engine.Host|string  an inventory host or its name
---@param cmd string
---@param opts? engine.ssh.ExecOptions
---@return engine.ssh.ExecResult|nil, engine.ssh.Error|nil, string|nil
function ssh.exec(host, cmd, opts) end

ssh.upload = Host.upload
ssh.download = Host.download
ssh.read_file = Host.read_file
ssh.write_file = Host.write_file
ssh.stat = Host.stat
ssh.exists = Host.exists

return ssh
