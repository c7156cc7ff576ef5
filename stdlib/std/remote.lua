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

--- read_files(host, dir, files, {what, filter}) → list of {file, body}: the files of `files`
--- (relative to dir, or absolute; a glob of letters, digits, . _ - / * ? is expanded by the node's
--- shell) that exist, read with sudo in one command. filter: a shell command writing the file "$f"
--- to stdout instead of cat (to leave key material on the node).
function M.read_files(h, dir, files, opts)
  opts = opts or {}
  local quoted = {}
  for i, f in ipairs(files) do
    if f:find("[*?]") then
      if not f:match("^[%w%._%-/%*%?]+$") then error("remote.read_files: glob " .. string.format("%q", f) .. " has other characters than letters, digits, . _ - / * ?", 2) end
      quoted[i] = f
    else
      quoted[i] = M.quote(f)
    end
  end
  local r = M.must(h, "cd " .. M.quote(dir) .. " && for f in " .. table.concat(quoted, " ") .. "; do " ..
    "[ -f \"$f\" ] || continue; printf '\\n==> %s <==\\n' \"$f\"; " .. (opts.filter or "cat \"$f\"") .. "; done",
    { read_only = true, what = opts.what or ("reading " .. dir) })
  local out, text, pos = {}, "\n" .. r.stdout, 1
  while true do
    local s, e, file = text:find("\n==> (.-) <==\n", pos)
    if not s then break end
    local nxt = text:find("\n==> .- <==\n", e + 1) or (#text + 1)
    out[#out + 1] = { file = file, body = text:sub(e + 1, nxt - 1) }
    pos = nxt
  end
  return out
end

return M
