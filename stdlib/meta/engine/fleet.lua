---@meta engine.fleet
-- LuaCATS definitions for require "engine.fleet".

---@class engine.fleet.Options
---@field at_once? integer|string       hosts in flight: a count from 1 or "30%" (default: 1)
---@field max_failures? integer|string  failed hosts tolerated: a count or "10%" (default: 0)
---@field strategy? "window"|"batch"    sliding window, or whole batches (default: "window")
---@field max_per? table<string, integer>  at most N at once per value of a host variable, e.g. {zone = 1}
---@field between? fun(next_host: any): boolean|nil, string|nil  a gate before every admission after the first
---@field gate_passes? integer         passes in a row the gate needs (default: 1)
---@field gate_interval? number        seconds between gate tries (default: 5)
---@field gate_retry? number           seconds before a gate that said no is asked again, at most gate_interval (default: 1)
---@field gate_timeout? number         seconds the gate may take before the rollout stops (default: 600)
---@field pause? number                seconds between admissions (default: 0)
---@field order? fun(host: any): any   admission order by key
---@field canary? integer              the first N hosts one at a time; a failure among them stops all (default: 0)
---@field window? string               maintenance window: no host starts while it is closed ("Mon-Fri 22:00-04:00 Europe/Berlin")
---@field window_wait? boolean         while the window is closed, wait until it opens instead of stopping (default: false)

---@class engine.fleet.Result
---@field name string
---@field host any                      the element of `hosts`
---@field status "ok"|"failed"|"skipped"
---@field error? string
---@field duration number               seconds
---@field value any                     fn's first return value

---@class engine.fleet.WindowState
---@field open boolean
---@field closes_at? integer            epoch seconds, when open (none: not within a week)
---@field opens_at? integer             epoch seconds, when closed
---@field spec string

--- Per-host entries made when first read (a fleet of 100,000 hosts whose caller reads only `ok`
--- pays for none): res[i], ipairs, #res, pairs and JSON encoding see them all; `next` and
--- rawget see only the ones read so far.
---@class engine.fleet.Results: engine.fleet.Result[]
---@field ok integer
---@field failed integer
---@field skipped integer

local fleet = {}

--- Runs fn(host) for every host, each in its own coroutine, at most at_once at a time, in order.
--- A coroutine whose fn returned may run a later host: keep per-host state in locals, not keyed by coroutine.
--- Raises when failures exceed max_failures (after the running hosts finish). Yields.
---@param hosts any[]
--- fleet.each(hosts, fn, opts) (options last, as everywhere) or fleet.each(hosts, opts, fn).
---@param opts engine.fleet.Options|fun(host: any): any
---@param fn? fun(host: any): any|engine.fleet.Options
---@return engine.fleet.Results
function fleet.each(hosts, opts, fn) end

--- Inside fleet.each's fn: ends this host as skipped, with the reason (an unreachable node a
--- rollout may go past). Not a failure: max_failures and the canary are untouched; the recap and
--- report.json list the host as skipped; a resume runs it again. Raises; outside fleet.each it is
--- an error.
---@param reason string
function fleet.skip(reason) end

--- A maintenance window at a moment (default: now), as kured and system-upgrade-controller have
--- them: "DAYS HH:MM-HH:MM [ZONE]", DAYS as Mon-Fri, Sat,Sun or daily (left out: every day),
--- HH:MM:SS for seconds, ZONE a tz database name (default UTC); an end at or before the start runs
--- past midnight, belonging to the day it opens; several joined by ";". fleet.each's `window`
--- option takes the same: while it is closed no new host starts, the running ones finish, and
--- fleet.each raises naming when it opens next (a resume then goes on). Raises on a bad spec.
---@param spec string
---@param at? integer  epoch seconds
---@return engine.fleet.WindowState
function fleet.window(spec, at) end

return fleet
