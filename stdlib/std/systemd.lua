-- std.systemd: a node's systemd units as facts (read only) and operations (std.ops): a unit file
-- with exact content (written atomically, then daemon-reload), enabled, started, stopped. Unit
-- names are checked and quoted: a name from an inventory never reaches a shell unquoted.
local inventory = require "engine.inventory"
local remote = require "std.remote"

local M = {}

M.UNITS = "/etc/systemd/system"

local function unit_name(name, what)
  if type(name) ~= "string" or not name:match("^[%w@_%.%-:]+$") then
    error(string.format("%s: %q is not a unit name (letters, digits, @ _ . - :)", what, tostring(name)), 3)
  end
  if not name:find("%.%a+$") then name = name .. ".service" end
  return name
end

--- state(host, unit) → "active" | "activating" | "inactive" | "failed" | ...: systemctl is-active.
function M.state(h, unit)
  h = inventory.host(h, "systemd.state")
  unit = unit_name(unit, "systemd.state")
  local r, err, msg = h:exec("systemctl is-active " .. remote.quote(unit), { sudo = true, read_only = true })
  if not r then error(string.format("%s: systemctl is-active %s: %s (%s)", h.name, unit, err, msg or ""), 0) end
  return (r.stdout:match("^%s*(%S+)") or "unknown")
end

--- active(host, unit) → true | false, "etcd.service is failed"
function M.active(h, unit)
  local st = M.state(h, unit)
  return st == "active", unit_name(unit, "systemd.active") .. " is " .. st
end

--- enabled(host, unit) → true | false, why: systemctl is-enabled.
function M.is_enabled(h, unit)
  h = inventory.host(h, "systemd.is_enabled")
  unit = unit_name(unit, "systemd.is_enabled")
  local r, err, msg = h:exec("systemctl is-enabled " .. remote.quote(unit), { sudo = true, read_only = true })
  if not r then error(string.format("%s: systemctl is-enabled %s: %s (%s)", h.name, unit, err, msg or ""), 0) end
  local word = r.stdout:match("^%s*(%S+)") or "unknown"
  return word == "enabled", unit .. " is " .. word
end

--- read(host, path) → the file's content, or nil when there is none (read with sudo).
function M.read(h, path)
  h = inventory.host(h, "systemd.read")
  local r = remote.must(h, "if [ -f " .. remote.quote(path) .. " ]; then printf 1; cat " .. remote.quote(path) ..
    "; else printf 0; fi", { read_only = true, what = "reading " .. path })
  if r.stdout:sub(1, 1) ~= "1" then return nil end
  return r.stdout:sub(2)
end

-- Operations ----------------------------------------------------------------------------------

--- file(path, content, {mode, owner, group, name, reload}) → operation: the file holds exactly
--- content (written atomically with sudo; the dry run shows its lines). reload: systemctl
--- daemon-reload after writing (a unit file).
function M.file(path, content, opts)
  opts = opts or {}
  if type(path) ~= "string" or not path:match("^/") then error("systemd.file: path must be absolute", 2) end
  if type(content) ~= "string" then error("systemd.file: content must be a string", 2) end
  return {
    name = opts.name or path,
    holds = function(h)
      local have = M.read(h, path)
      if have == nil then return false, path .. " is missing" end
      return have == content, path .. " differs from what it should hold"
    end,
    apply = function(h)
      local http = require "engine.http"
      if http.dry_run() then
        log.info("dry-run: would write " .. path, { node = h.name, content = content })
        return
      end
      local ok, err, msg = h:write_file(path, content, { mode = opts.mode or "0644", owner = opts.owner or "root",
        group = opts.group or "root", sudo = true })
      if not ok then error(string.format("%s: writing %s: %s (%s)", h.name, path, err, msg or ""), 0) end
      if opts.reload then remote.must(h, "systemctl daemon-reload", { what = "systemctl daemon-reload" }) end
    end,
  }
end

--- unit(name, text) → operation "unit NAME": /etc/systemd/system/NAME holds text; daemon-reload.
function M.unit(name, text)
  name = unit_name(name, "systemd.unit")
  return M.file(M.UNITS .. "/" .. name, text, { name = "unit " .. name, reload = true })
end

--- enabled(name) → operation "enable NAME": enabled at boot, and not started by it.
function M.enabled(name)
  name = unit_name(name, "systemd.enabled")
  return {
    name = "enable " .. name,
    holds = function(h) return M.is_enabled(h, name) end,
    apply = function(h) remote.must(h, "systemctl enable " .. remote.quote(name), { what = "systemctl enable " .. name }) end,
  }
end

--- started(name) → operation "start NAME": active (systemctl start waits for it, as systemd does
--- for Type=notify).
function M.started(name)
  name = unit_name(name, "systemd.started")
  return {
    name = "start " .. name,
    holds = function(h) return M.active(h, name) end,
    apply = function(h) remote.must(h, "systemctl start " .. remote.quote(name), { what = "systemctl start " .. name, timeout = 300 }) end,
  }
end

--- stopped(name, {disable}) → operation "stop NAME": not active (and not enabled, with disable).
function M.stopped(name, opts)
  name = unit_name(name, "systemd.stopped")
  opts = opts or {}
  return {
    name = "stop " .. name,
    holds = function(h)
      local st = M.state(h, name)
      if st == "active" or st == "activating" or st == "deactivating" then return false, name .. " is " .. st end
      if opts.disable and M.is_enabled(h, name) then return false, name .. " is enabled" end
      return true
    end,
    apply = function(h)
      local q = remote.quote(name)
      remote.must(h, (opts.disable and ("systemctl disable " .. q .. " && ") or "") .. "systemctl stop " .. q,
        { what = "systemctl stop " .. name, timeout = 300 })
    end,
  }
end

-- Timers ------------------------------------------------------------------------------------

--- times(at, stagger_s, n) → n times "HH:MM:SS", the first at `at` ("HH:MM" or "HH:MM:SS"), each
--- next stagger_s later (wrapping at midnight): one per node, so no two nodes' timers fire at once.
--- A malformed `at` raises, naming it.
function M.times(at, stagger_s, n)
  local h, m, s = tostring(at):match("^(%d%d?):(%d%d):?(%d?%d?)$")
  if not h or tonumber(h) > 23 or tonumber(m) > 59 or (s ~= "" and tonumber(s) > 59) then
    error("at must be HH:MM or HH:MM:SS, not " .. tostring(at), 0)
  end
  local base = tonumber(h) * 3600 + tonumber(m) * 60 + (tonumber(s) or 0)
  local out = {}
  for i = 0, n - 1 do
    local t = math.floor(base + i * stagger_s) % 86400
    out[#out + 1] = string.format("%02d:%02d:%02d", t // 3600, (t % 3600) // 60, t % 60)
  end
  return out
end

--- oneshot_text{description, exec, after, env_file, environment = {"K=V", ...}} → the text of a
--- Type=oneshot service unit (what a timer starts).
function M.oneshot_text(o)
  local lines = { "[Unit]", "Description=" .. o.description }
  if o.after then lines[#lines + 1] = "After=" .. o.after end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "[Service]"
  lines[#lines + 1] = "Type=oneshot"
  if o.env_file then lines[#lines + 1] = "EnvironmentFile=" .. o.env_file end
  for _, kv in ipairs(o.environment or {}) do lines[#lines + 1] = "Environment=" .. kv end
  lines[#lines + 1] = "ExecStart=" .. o.exec
  lines[#lines + 1] = ""
  return table.concat(lines, "\n")
end

--- timer_text{description, on_calendar, unit} → the text of a Persistent= timer starting unit at
--- on_calendar ("*-*-* 03:00:00", "Mon *-*-* 03:00:00"), enabled by timers.target.
function M.timer_text(o)
  return table.concat({ "[Unit]", "Description=" .. o.description, "", "[Timer]", "OnCalendar=" .. o.on_calendar,
    "Persistent=true", "Unit=" .. o.unit, "", "[Install]", "WantedBy=timers.target", "" }, "\n")
end

--- timer_line(host, timer) → the node's `systemctl list-timers` line for the timer (NEXT, LEFT,
--- LAST, PASSED, UNIT, ACTIVATES), or nil when it is not started.
function M.timer_line(h, timer)
  h = inventory.host(h, "systemd.timer_line")
  timer = unit_name(timer, "systemd.timer_line")
  local r = remote.must(h, "systemctl list-timers " .. remote.quote(timer) .. " --all --no-pager",
    { read_only = true, what = "systemctl list-timers" })
  for line in r.stdout:gmatch("[^\n]+") do
    if line:find(timer, 1, true) then return line end
  end
  return nil
end

return M
