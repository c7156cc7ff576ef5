---@meta std.systemd
-- LuaCATS definitions for require "std.systemd": a node's systemd units as facts and operations.
-- Unit names are checked (letters, digits, @ _ . - :) and quoted; "etcd" means "etcd.service".

---@class std.systemd
local systemd = {}

systemd.UNITS = "/etc/systemd/system"

--- systemctl is-active: "active", "activating", "inactive", "failed", ... Yields.
---@param host engine.Host|string
---@param unit string
---@return string
function systemd.state(host, unit) end

--- true, or false and "etcd.service is failed". Yields.
---@param host engine.Host|string  an inventory host or its name
---@param unit string
---@return boolean, string
function systemd.active(host, unit) end

--- systemctl is-enabled: true, or false and why. Yields.
---@param host engine.Host|string  an inventory host or its name
---@param unit string
---@return boolean, string
function systemd.is_enabled(host, unit) end

--- The file's content (read with sudo), nil when there is none. Yields.
---@param host engine.Host|string
---@param path string
---@return string|nil
function systemd.read(host, path) end

---@class std.systemd.FileOptions
---@field mode? string  (default: "0644")
---@field owner? string  (default: "root")
---@field group? string  (default: "root")
---@field name? string  the step's name (default: the path)
---@field reload? boolean

--- Operation: the file holds exactly content, written atomically with sudo (reload: then daemon-reload).
---@param path string
---@param content string
---@param opts? std.systemd.FileOptions
---@return std.ops.Operation
function systemd.file(path, content, opts) end

--- Operation "unit NAME": /etc/systemd/system/NAME holds text; daemon-reload after a change.
---@param name string
---@param text string
---@return std.ops.Operation
function systemd.unit(name, text) end

--- Operation "enable NAME": enabled, not started.
---@param name string
---@return std.ops.Operation
function systemd.enabled(name) end

--- Operation "start NAME": active (systemctl start waits, as for Type=notify).
---@param name string
---@return std.ops.Operation
function systemd.started(name) end

---@class std.systemd.StoppedOptions
---@field disable? boolean

--- Operation "stop NAME": not active (and disabled, with disable).
---@param name string
---@param opts? std.systemd.StoppedOptions
---@return std.ops.Operation
function systemd.stopped(name, opts) end

--- n times "HH:MM:SS", the first at `at`, each next stagger_s later (wrapping at midnight).
---@param at string       "HH:MM" or "HH:MM:SS"
---@param stagger_s number
---@param n integer
---@return string[]
function systemd.times(at, stagger_s, n) end

--- The node's `systemctl list-timers` line for the timer, or nil when it is not started. Yields.
---@param host engine.Host|string  an inventory host or its name
---@param timer string
---@return string|nil
function systemd.timer_line(host, timer) end

---@class std.systemd.OneshotTextOptions
---@field description string
---@field exec string
---@field after? string
---@field env_file? string
---@field environment? string[]  Environment= lines (default: none)

--- The text of a Type=oneshot service unit.
---@param o std.systemd.OneshotTextOptions
---@return string
function systemd.oneshot_text(o) end

---@class std.systemd.TimerTextOptions
---@field description string
---@field on_calendar string
---@field unit string

--- The text of a Persistent= timer starting o.unit at o.on_calendar, enabled by timers.target.
---@param o std.systemd.TimerTextOptions
---@return string
function systemd.timer_text(o) end

return systemd
