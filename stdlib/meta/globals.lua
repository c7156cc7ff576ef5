---@meta
-- LuaCATS definitions for the globals engine gives every runbook. For editors (lua-language-server);
-- never loaded by the engine.

---@alias engine.ParamType "string"|"integer"|"number"|"boolean"|"enum"|"list"|"duration"|"amount"|"time"|"output"

---@class engine.ParamSpec
---@field type? engine.ParamType   (default: "string")
---@field required? boolean        (default: false)
---@field default? any             a value of the type; a duration may be "10m"
---@field pattern? string          a Lua pattern a string (or each list item) must match
---@field help? string             shown by `engine run X.lua --help` and in errors
---@field secret? boolean          never shown (default: false)
---@field values? string[]         the choices of an enum

---@class engine.RunbookDecl
---@field name string
---@field summary? string
---@field description? string
---@field read_only? boolean       changes nothing: never resumed, and a change inside it raises
---@field params? table<string, engine.ParamSpec>
---@field run fun(p: table, inv: engine.Inventory)

--- Declares the runbook; the file must `return runbook { ... }`.
---@param decl engine.RunbookDecl
---@return engine.RunbookDecl
function runbook(decl) end

--- Suspends this coroutine for `seconds`; the rest of the run goes on. Yields.
---@param seconds number
function sleep(seconds) end

--- Runs fn(...) with a deadline; returns its results, or nil, "timeout". Yields.
---@param seconds number
---@param fn function
---@return any ...
function timeout(seconds, fn, ...) end

---@class engine.StepOptions
---@field probe? fun(): boolean, any  on resume, for a step that started but did not finish: true if its effect is there

--- A journaled step: run once per run; a resumed run returns its recorded results.
---@param name string
---@param fn fun(): any
---@param opts? engine.StepOptions
---@return any ...
function step(name, fn, opts) end

--- Asks the operator on a terminal (y/N); --yes answers yes; with neither the run stops and says so.
--- Other hosts' work goes on while it waits. Yields.
---@param message string
---@return boolean
function confirm(message) end

--- Raises string.format(fmt, ...) at the caller's line.
---@param fmt string
function fail(fmt, ...) end

---@class engine.log
log = {}
---@param msg string
---@param fields? table
function log.debug(msg, fields) end
---@param msg string
---@param fields? table
function log.info(msg, fields) end
---@param msg string
---@param fields? table
function log.warn(msg, fields) end
---@param msg string
---@param fields? table
function log.error(msg, fields) end
--- A line for machines: a row of what the runbook also prints as a table for people. The run log
--- and a JSON console (`--log-format json`) get it at info; a text console does not.
---@param msg string
---@param fields table
function log.record(msg, fields) end
--- From now on no output (console, run log, report, journal) shows this value.
---@param value string
function log.secret(value) end
--- Seconds since the run began (monotonic): the start of a span.
---@return number
function log.clock() end
--- Records on report.json's timeline that `name` (a drain, a wait) took from `start` (log.clock())
--- until now on this coroutine's host.
---@param kind string
---@param name string
---@param start number
---@param outcome? string  default "ok"
function log.span(kind, name, start, outcome) end

--- One table per host for the whole run; vars and groups are filled in when first read (or on
--- pairs, or when the host is logged or journaled), so a raw next() on an unread host misses them.
---@class engine.Host
---@field name string        the inventory name
---@field vars table         every variable after Ansible's precedence, plus inventory_hostname and group_names
---@field groups string[]    every group the host is in

---@class engine.Inventory
local Inventory = {}
--- The hosts of a group and of the groups below it, in inventory order. Raises on an unknown group.
---@param name string
---@return engine.Host[]
function Inventory:group(name) end
--- Hosts matching an Ansible pattern ("k8s-cp:&etcd:!cp3"); all hosts without one.
---@param pattern? string
---@return engine.Host[]
function Inventory:hosts(pattern) end
--- The names of the hosts the pattern matches that --limit hides (none without --limit): what a
--- runbook that must see a whole group (every etcd member) says was left out.
---@param pattern? string
---@return string[]
function Inventory:hidden(pattern) end
--- One host by name. Raises on an unknown name.
---@param name string
---@return engine.Host
function Inventory:host(name) end
--- Every group name.
---@return string[]
function Inventory:groups() end
