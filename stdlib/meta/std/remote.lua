---@meta std.remote
-- LuaCATS definitions for require "std.remote".

---@class std.remote
local remote = {}

--- text single-quoted for sh.
---@param text string
---@return string
function remote.quote(text) end

--- Runs cmd with sudo; anything but exit 0 raises "HOST: WHAT exited N: <end of stderr>". Yields.
---@param host engine.Host|string
---@param cmd string
---@param opts? {timeout?: number|string, stream?: boolean, read_only?: boolean, what?: string}
---@return engine.ssh.ExecResult
function remote.must(host, cmd, opts) end

--- The files that exist among `files` (relative to dir or absolute; simple globs), read with sudo in
--- one command; filter replaces `cat "$f"` (e.g. to drop key lines on the node). Yields.
---@param host engine.Host|string
---@param dir string
---@param files string[]
---@param opts? {what?: string, filter?: string}
---@return {file: string, body: string}[]
function remote.read_files(host, dir, files, opts) end

return remote
