-- The runbook prelude: the few globals written in Lua on top of the engine's primitives. It runs once
-- per Lua state before any runbook, with the native helpers as its argument.
local native = ...
local raw_pcall, raw_xpcall, raw_load, raw_error = pcall, xpcall, load, error
local is_interrupt, deadline_push, deadline_pop = native.is_interrupt, native.deadline_push, native.deadline_pop
local pack, unpack, format = table.pack, table.unpack, string.format

-- A timeout or cancellation must reach the engine: pcall re-raises it instead of swallowing it.
local function pass(ok, ...)
  if not ok and is_interrupt((...)) then raw_error((...), 0) end
  return ok, ...
end

function pcall(f, ...)
  return pass(raw_pcall(f, ...))
end

function xpcall(f, handler, ...)
  local function guarded(e)
    if is_interrupt(e) then return e end
    return handler(e)
  end
  return pass(raw_xpcall(f, guarded, ...))
end

-- Text chunks only: binary chunks could break the sandbox.
function load(chunk, name, mode, env)
  if mode ~= nil and mode ~= "t" then raw_error("load: only text chunks are allowed (mode \"t\")", 2) end
  -- An env argument, even nil, becomes the chunk's _ENV: without one the chunk sees the globals.
  if env == nil then return raw_load(chunk, name, "t") end
  return raw_load(chunk, name, "t", env)
end

--- Runs fn(...) with a deadline. Every wait inside it (sleep, SSH, HTTP...) is cut off when the
--- deadline passes. Returns fn's results, or nil, "timeout".
function timeout(seconds, fn, ...)
  if type(seconds) ~= "number" or seconds < 0 then
    raw_error("timeout: seconds must be a non-negative number, got " .. tostring(seconds), 2)
  end
  if type(fn) ~= "function" then raw_error("timeout: second argument must be a function", 2) end
  local id = deadline_push(seconds)
  local res = pack(raw_pcall(fn, ...))
  deadline_pop(id)
  if res[1] then return unpack(res, 2, res.n) end
  if is_interrupt(res[2], id) then return nil, "timeout" end
  raw_error(res[2], 0)
end

--- step(name, fn, {probe = function() return done, result end}) → fn's results
--- Journaled: a resumed run returns a finished step's recorded results without running it again.
--- A step that started but has no record of finishing is unknown: its probe (when given) says
--- whether it took effect; without one the run stops and says so (resume --retry-unknown reruns it).
function step(name, fn, opts)
  if type(name) ~= "string" or name == "" then raw_error("step: the first argument must be a name", 2) end
  if type(fn) ~= "function" then raw_error("step: the second argument must be a function", 2) end
  if opts ~= nil and type(opts) ~= "table" then raw_error("step: the third argument must be a table of options", 2) end
  local key = native.step_key(name)
  if key == nil then  -- no journal: a dry run, or code outside a run
    native.step_enter(name)
    local res = pack(raw_pcall(fn))
    native.step_leave()
    if not res[1] then raw_error(res[2], 0) end
    return unpack(res, 2, res.n)
  end
  local state, saved, n = native.step_lookup(key)
  if state == "done" then
    log.debug("step already done", { step = key })
    return unpack(saved, 1, n)
  end
  if state == "intent" then
    local probe = opts and opts.probe
    if probe then
      local ok, r = probe()
      if ok then
        log.info("step found done by its probe", { step = key })
        native.step_done(key, r)
        return r
      end
      log.info("step not done according to its probe: running it", { step = key })
    elseif not native.retry_unknown() then
      raw_error(format("step '%s' started before the run stopped and has no record of finishing: it may or may not "
        .. "have taken effect. Check it, then resume with --retry-unknown to run it again", key), 0)
    else
      log.warn("step may have run already: running it again (--retry-unknown)", { step = key })
    end
  end
  native.step_intent(key)
  native.step_enter(name)
  local res = pack(raw_pcall(fn))
  native.step_leave()
  if res[1] then
    native.step_done(key, unpack(res, 2, res.n))
    return unpack(res, 2, res.n)
  end
  -- An interrupted step keeps only its INTENT: unknown on resume, as it should be.
  if not is_interrupt(res[2]) then native.step_failed(key, tostring(res[2])) end
  raw_error(res[2], 0)
end

--- Fails the runbook with a formatted message at the caller's line.
--- An expected stop (a preflight that refuses): said once, without a traceback.
function fail(fmt, ...)
  local msg = format(fmt, ...)
  native.declare_failure(msg)
  raw_error(msg, 2)
end
