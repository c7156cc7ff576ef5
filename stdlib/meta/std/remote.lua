---@meta std.remote
-- LuaCATS definitions for require "std.remote".

---@class std.remote
local remote = {}

--- text single-quoted for sh.
---@param text string
---@return string
function remote.quote(text) end

---@class std.remote.MustOptions
---@field timeout? number|string
---@field stream? boolean
---@field read_only? boolean
---@field what? string  what the log and errors call it (default: the command)

--- Runs cmd with sudo; anything but exit 0 raises "HOST: WHAT exited N: <end of stderr>". Yields.
---@param host engine.Host|string
---@param cmd string
---@param opts? std.remote.MustOptions
---@return engine.ssh.ExecResult
function remote.must(host, cmd, opts) end

---@class std.remote.ReadFilesOptions
---@field what? string  what the log and errors call it (default: "reading DIR")
---@field filter? string  (default: "cat \"$f\"")

---@class std.remote.ReadFilesResult
---@field file string
---@field body string

--- The files that exist among `files` (relative to dir or absolute; simple globs), read with sudo in
--- one command; filter replaces `cat "$f"` (e.g. to drop key lines on the node). Yields.
---@param host engine.Host|string
---@param dir string
---@param files string[]
---@param opts? std.remote.ReadFilesOptions
---@return std.remote.ReadFilesResult[]
function remote.read_files(host, dir, files, opts) end

return remote
