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

return remote
