-- std.remote: a command on a node that must succeed, for facts (read_only) and operations alike.
local check = require "engine.check"
local inventory = require "engine.inventory"

local M = {}

M.quote = require("engine.ssh").quote

local function tail(s, n)
  s = (s or ""):gsub("%s+$", "")
  if #s > (n or 600) then s = "..." .. s:sub(-(n or 600)) end
  return s
end

--- must(host, cmd, {timeout, stream, read_only, what}) → result. Runs with sudo; the command must
--- exit 0: anything else raises with the host, what was being done, and the end of its stderr (and
--- stdout). read_only = true: a read, which --dry-run runs too.
function M.must(h, cmd, opts)
  h = inventory.host(h, "remote.must")
  opts = check.options(opts, { "timeout", "stream", "read_only", "what" }, "remote.must")
  local r, err, msg = h:exec(cmd, { sudo = true, timeout = opts.timeout, stream = opts.stream, read_only = opts.read_only })
  local what = opts.what or cmd
  if not r then error(string.format("%s: %s: %s (%s)", h.name, what, err, msg or ""), 0) end
  if r.code ~= 0 then
    local out = tail(r.stderr) ~= "" and tail(r.stderr) or tail(r.stdout)
    error(string.format("%s: %s exited %d: %s", h.name, what, r.code, out), 0)
  end
  return r
end

return M
