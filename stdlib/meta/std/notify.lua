---@meta std.notify
-- LuaCATS definitions for require "std.notify": a webhook told what a run is doing (start, gate
-- held, stop, failure, success), Slack-compatible ({"text": ...}) or plain JSON. A notification
-- that cannot be sent is a warning and never changes the run's outcome.

---@class std.notify.ConfigureOptions
---@field url? string                 the webhook (none: nothing is sent)
---@field format? "slack"|"json"      (default: "slack")
---@field runbook? string             named in each message (default: "engine")
---@field timeout? number             seconds (default: 5)

---@class std.notify
local notify = {}

--- Where and how notifications go.
---@param opts std.notify.ConfigureOptions
function notify.configure(opts) end

--- The JSON body a notification sends: {text} for Slack; {event, run, runbook, message, see, ...fields} for json.
---@param event string
---@param message string
---@param fields? table<string, any>  node = ..., and any more (json only)
---@return table
function notify.body(event, message, fields) end

--- POSTs the notification now; false (and a warning) when it could not be sent or none is configured. Yields.
---@param event string   "start", "gate held", "stop", "failure", "success", or the runbook's own
---@param message string
---@param fields? table<string, any>
---@return boolean
function notify.send(event, message, fields) end

return notify
