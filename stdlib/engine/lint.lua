-- engine.lint: what `engine check` finds in a runbook and its own modules before anything runs.
-- A token-level pass (no full parser): the mistakes that otherwise surface mid-rollout as "attempt
-- to call a nil value" after changes were made.
--   * a field of an engine or std module that does not exist (k8s.node, fleet.eachh), with the
--     closest existing name;
--   * a method no object has (h:exce), checked against every method the engine's objects, the
--     string library and the files themselves define;
--   * an unknown key in a literal option table passed to a function the API documents
--     (fleet.each(hosts, {at_onec = 2}, fn), h:exec(cmd, {suod = true}));
--   * a name used as a global that is neither the sandbox's nor defined anywhere in the file.
-- What it knows of the API comes from the modules themselves (their real tables) and from the
-- LuaCATS definitions in stdlib/meta (the option tables), so it cannot drift from either.
local M = {}

local format = string.format

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or repeat
return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

--- tokens(text) → { {t = "name"|"string"|"number"|"op"|"eof", v = text, line, col} ... }
local function tokens(src)
  local out, i, line, col0, n = {}, 1, 1, 0, #src
  local function push(t, v, at) out[#out + 1] = { t = t, v = v, line = line, col = at - col0 } end
  local function newlines(s)
    for p in s:gmatch("()\n") do line = line + 1; col0 = i + p - 1 end
  end
  while i <= n do
    local c = src:sub(i, i)
    if c == "\n" then
      line = line + 1; col0 = i; i = i + 1
    elseif c:match("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "--" then
      local eq = src:match("^%[(=*)%[", i + 2)
      if eq then
        local close = src:find("]" .. eq .. "]", i, true) or n
        newlines(src:sub(i, close)); i = close + #eq + 2
      else
        i = (src:find("\n", i, true) or n + 1)
      end
    elseif c:match("[%a_]") then
      local w = src:match("^[%w_]+", i)
      push(KEYWORDS[w] and "kw" or "name", w, i); i = i + #w
    elseif c:match("%d") or (c == "." and src:sub(i + 1, i + 1):match("%d")) then
      local num = src:match("^0[xX][%x%.]+[pP]?[-+]?%x*", i) or src:match("^%d*%.?%d*[eE][-+]?%d+", i) or src:match("^%d*%.?%d*", i)
      push("number", num, i); i = i + #num
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then j = j + 2 elseif d == c or d == "\n" then break else j = j + 1 end
      end
      local s = src:sub(i + 1, j - 1)
      push("string", s:gsub("\\(.)", "%1"), i); newlines(src:sub(i, j)); i = j + 1
    elseif c == "[" and src:match("^%[=*%[", i) then
      local eq = src:match("^%[(=*)%[", i)
      local close = src:find("]" .. eq .. "]", i, true) or n
      push("string", src:sub(i + #eq + 2, close - 1), i)
      newlines(src:sub(i, close)); i = close + #eq + 2
    else
      local op = src:match("^%.%.%.", i) or src:match("^[=~<>]=", i) or src:match("^%.%.", i) or src:match("^::", i)
        or src:match("^//", i) or src:match("^<<", i) or src:match("^>>", i) or c
      push("op", op, i); i = i + #op
    end
  end
  push("eof", "", i)
  return out
end
M.tokens = tokens

-- Keywords that open a block closed by `end` (or `until`): `for`/`while` open theirs with `do`.
local OPENS = { ["function"] = true, ["if"] = true, ["do"] = true, ["repeat"] = true }

local function did_you_mean(word, candidates)
  local best, bd = nil, math.huge
  for _, c in ipairs(candidates) do
    -- edit distance with transpositions (exce → exec is one), small strings
    local a, b = word, c
    local d = {}
    for i = 0, #a do d[i] = { [0] = i } end
    for j = 0, #b do d[0][j] = j end
    for i = 1, #a do
      for j = 1, #b do
        local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
        d[i][j] = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
        if i > 1 and j > 1 and a:sub(i, i) == b:sub(j - 1, j - 1) and a:sub(i - 1, i - 1) == b:sub(j, j) then
          d[i][j] = math.min(d[i][j], d[i - 2][j - 2] + 1)
        end
      end
    end
    if d[#a][#b] < bd then best, bd = c, d[#a][#b] end
  end
  if best and bd <= math.max(1, #word // 3) then return format(" (did you mean '%s'?)", best) end
  return ""
end

local function keys_of(t)
  local out = {}
  for k in pairs(t) do if type(k) == "string" then out[#out + 1] = k end end
  table.sort(out)
  return out
end

-- The option keys each API function documents, from the LuaCATS definitions: "engine.fleet.each" → {[2] = set,
-- [3] = set}; a method "Host:exec" → {[1] = set} (arguments after self).
local function api_options(defs)
  local classes, funcs, arity = {}, {}, {}
  for _, text in pairs(defs) do
    local cls
    for l in text:gmatch("[^\n]+") do
      local name, parent = l:match("^%-%-%-@class ([%w_.]+):?%s*([%w_.]*)")
      if name then
        cls = { fields = {}, parent = parent ~= "" and parent or nil }
        classes[name] = cls
      elseif l:match("^%-%-%-@field") and cls then
        local f = l:match("^%-%-%-@field ([%w_]+)")
        if f then cls.fields[f] = true end
      elseif not l:match("^%-%-%-") then
        cls = nil
      end
    end
  end
  local function class_keys(name, seen)
    local c = classes[name]
    if not c or (seen or {})[name] then return nil end
    local out = {}
    for k in pairs(c.fields) do out[k] = true end
    if c.parent then for k in pairs(class_keys(c.parent, { [name] = true }) or {}) do out[k] = true end end
    return out
  end
  local function keys_of_type(ty)
    local out, any = {}, false
    local literal = ty:match("^{(.*)}%??$")
    if literal then
      local depth, key = 0, ""
      for ch in (literal .. ","):gmatch(".") do
        if ch == "{" or ch == "(" or ch == "<" then depth = depth + 1
        elseif ch == "}" or ch == ")" or ch == ">" then depth = depth - 1 end
        if ch == "," and depth == 0 then
          local k = key:match("^%s*([%w_]+)%??%s*:")
          if k then out[k] = true; any = true end
          key = ""
        else
          key = key .. ch
        end
      end
      return any and out or nil
    end
    for part in ty:gmatch("[^|]+") do
      local ks = class_keys((part:gsub("%?$", "")))
      if ks then for k in pairs(ks) do out[k] = true; any = true end end
    end
    return any and out or nil
  end
  for path, text in pairs(defs) do
    local module = text:match("^%-%-%-@meta ([%w_.]+)") or path
    local params, optionals = {}, {}
    for l in text:gmatch("[^\n]+") do
      local pname, optional, ptype = l:match("^%-%-%-@param ([%w_]+)(%??)%s+(%S.*)$")
      if pname then
        optionals[pname] = optional == "?" or ptype:match("^[^%s]*|nil") ~= nil or ptype:match("^any") ~= nil
        -- the type runs to the end of the line, or to the first space outside braces
        local depth, ty = 0, ""
        for ch in ptype:gmatch(".") do
          if ch == "{" then depth = depth + 1 elseif ch == "}" then depth = depth - 1 end
          if ch:match("%s") and depth == 0 then break end
          ty = ty .. ch
        end
        params[pname] = ty
      elseif l:match("^function ") then
        local owner, sep, fname, args = l:match("^function ([%w_]+)([.:])([%w_]+)%((.-)%)")
        if owner then
          local id = sep == ":" and (owner .. ":" .. fname) or (module .. "." .. fname)
          local i, opts, min, varargs = 0, nil, 0, false
          for a in args:gmatch("[^,%s]+") do
            i = i + 1
            if a == "..." then varargs = true end
            local ty = params[a]
            local keys = ty and keys_of_type(ty)
            if keys then opts = opts or {}; opts[i] = keys end
            -- required: documented and neither optional nor nil-able, and every one before it too
            if ty and not optionals[a] and min == i - 1 then min = i end
          end
          if opts then funcs[id] = opts end
          if sep == "." then arity[id] = { min = min, max = varargs and math.huge or i } end
        end
        params, optionals = {}, {}
      elseif not l:match("^%-%-%-") then
        params, optionals = {}, {}
      end
    end
  end
  return funcs, arity
end

--- check(sources, defs, known_globals) → findings {file, line, col, msg}
--- sources: {path = text} (the runbook and its own modules); defs: {path = text} (the LuaCATS files of stdlib/meta);
--- known_globals: names the sandbox provides.
function M.check(sources, defs, known_globals)
  local findings = {}
  local options, arity = api_options(defs)
  -- Every method and field name a file or the definitions declare: a method call on anything must be one.
  local methods = {}
  for k in pairs(string) do methods[k] = true end
  for _, text in pairs(defs) do
    for m in text:gmatch("\nfunction [%w_]+:([%w_]+)") do methods[m] = true end
  end
  local streams = {}
  for path, text in pairs(sources) do
    local toks = tokens(text)
    streams[path] = toks
    for i = 1, #toks - 1 do
      local a, b = toks[i], toks[i + 1]
      if a.t == "name" and b.t == "op" and b.v == "=" then methods[a.v] = true end
      if a.t == "op" and (a.v == ":" or a.v == ".") and b.t == "name" and toks[i - 2] and toks[i - 2].v == "function" then
        methods[b.v] = true
      end
      if a.t == "kw" and a.v == "function" and b.t == "name" then methods[b.v] = true end
    end
  end
  local method_list = keys_of(methods)
  local globals = {}
  for _, g in ipairs(known_globals) do globals[g] = true end
  local global_list = {}
  for g in pairs(globals) do global_list[#global_list + 1] = g end

  for path, toks in pairs(streams) do
    local function add(tok, msg) findings[#findings + 1] = { file = path, line = tok.line, col = tok.col, msg = msg } end
    local function warn(tok, msg) findings[#findings + 1] = { file = path, line = tok.line, col = tok.col, msg = "warning: " .. msg } end
    -- A local named once in its file (its declaration) is never used: a typo'd use elsewhere, or dead code.
    local uses = {}
    for _, t in ipairs(toks) do if t.t == "name" then uses[t.v] = (uses[t.v] or 0) + 1 end end
    for i = 1, #toks - 1 do
      if toks[i].v == "local" then
        local j = i + 1
        if toks[j].v ~= "function" then
          while toks[j] and toks[j].t == "name" do
            local n = toks[j].v
            j = j + 1
            local attr = toks[j] and toks[j].v == "<" and toks[j + 1].v  -- a <close> local is used by going out of scope
            if uses[n] == 1 and n:sub(1, 1) ~= "_" and attr ~= "close" then warn(toks[j - 1], format("unused local '%s'", n)) end
            if attr then j = j + 3 end
            if toks[j] and toks[j].v == "," then j = j + 1 else break end
          end
        end
      end
    end
    -- module aliases: local NAME = require "MOD"
    local alias = {}
    for i = 1, #toks - 4 do
      local t = toks
      if t[i].v == "local" and t[i + 1].t == "name" and t[i + 2].v == "=" and t[i + 3].v == "require" then
        local modtok = t[i + 4].v == "(" and t[i + 5] or t[i + 4]
        if modtok.t == "string" then
          local ok, mod = pcall(require, modtok.v)
          if ok and type(mod) == "table" then alias[t[i + 1].v] = { name = modtok.v, tbl = mod } end
        end
      end
    end
    -- names declared anywhere in the file: locals, parameters, for variables, global functions
    local declared = {}
    for i = 1, #toks do
      local t = toks[i]
      if t.v == "local" then
        local j = i + 1
        if toks[j].v == "function" then j = j + 1 end
        while toks[j] and toks[j].t == "name" do
          declared[toks[j].v] = true
          j = j + 1
          if toks[j] and toks[j].v == "<" then j = j + 3 end  -- <const>, <close>
          if toks[j] and toks[j].v == "," then j = j + 1 else break end
        end
      elseif t.v == "function" then
        local j = i + 1
        if toks[j].t == "name" and toks[j + 1].v ~= "." and toks[j + 1].v ~= ":" then declared[toks[j].v] = true end
        while toks[j] and toks[j].v ~= "(" do j = j + 1 end
        j = j + 1
        while toks[j] and toks[j].v ~= ")" do
          if toks[j].t == "name" then declared[toks[j].v] = true end
          j = j + 1
        end
      elseif t.v == "for" then
        local j = i + 1
        while toks[j] and toks[j].v ~= "in" and toks[j].v ~= "=" do
          if toks[j].t == "name" then declared[toks[j].v] = true end
          j = j + 1
        end
      end
    end

    local brace_stack = {}
    for i = 1, #toks do
      local t, prev, nxt = toks[i], toks[i - 1], toks[i + 1]
      if t.v == "{" then brace_stack[#brace_stack + 1] = i elseif t.v == "}" then brace_stack[#brace_stack] = nil end
      if t.t == "name" and prev and (prev.v == "." or prev.v == ":") and toks[i - 2] and toks[i - 2].t == "name"
        and alias[toks[i - 2].v] and not (toks[i - 3] and (toks[i - 3].v == "." or toks[i - 3].v == ":"))
        and not (nxt.v == "=" ) then
        -- ALIAS.FIELD: the module must have it
        local a = alias[toks[i - 2].v]
        if a.tbl[t.v] == nil and not (toks[i - 3] and toks[i - 3].v == "function") then
          add(t, format("module '%s' has no field '%s'%s", a.name, t.v, did_you_mean(t.v, keys_of(a.tbl))))
        end
      elseif t.t == "name" and prev and prev.v == ":" and nxt and (nxt.v == "(" or nxt.t == "string" or nxt.v == "{")
        and not (toks[i - 2] and alias[toks[i - 2].v]) and not (toks[i - 3] and toks[i - 3].v == "function") then
        if not methods[t.v] then
          add(t, format("no object the engine knows has a method '%s'%s", t.v, did_you_mean(t.v, method_list)))
        end
      elseif t.t == "name" and not (prev and (prev.v == "." or prev.v == ":" or prev.v == "::" or prev.v == "goto"))
        and not (nxt.v == "=" and prev and (prev.v == "{" or prev.v == "," or prev.v == ";") and #brace_stack > 0)
        and not (nxt.v == "::") and not (prev and prev.v == "<" and nxt.v == ">")  -- <close>, <const>
        and not declared[t.v] and not globals[t.v] and not alias[t.v] then
        if nxt.v == "=" then  -- not a table key (those were skipped above): a statement
          -- the sandbox refuses new globals at run time: a local was meant
          add(t, format("assignment to undeclared global '%s' (declare it: local %s = ...)", t.v, t.v))
        else
          add(t, format("undefined global '%s'%s", t.v, did_you_mean(t.v, global_list)))
        end
      end
      -- Literal option tables: ALIAS.FN(a, {k = ...}) and X:METHOD(a, {k = ...})
      if t.v == "(" and prev and prev.t == "name" and toks[i - 2] and (toks[i - 2].v == "." or toks[i - 2].v == ":") then
        local id
        if toks[i - 2].v == "." and toks[i - 3] and alias[toks[i - 3].v] then
          id = alias[toks[i - 3].v].name .. "." .. prev.v
        elseif toks[i - 2].v == ":" then
          for key in pairs(options) do
            if key:match(":(.+)$") == prev.v then id = key end
          end
        end
        local ar = id and arity[id]
        if ar then
          -- count the arguments at this call's top level
          local n, depth, j, last = 0, 0, i + 1, nil
          while toks[j] and toks[j].t ~= "eof" do
            local v, kw = toks[j].v, toks[j].t == "kw"
            if depth == 0 and v == ")" then break end
            if depth == 0 and n == 0 then n = 1 end
            if depth == 0 and v == "," then n = n + 1 end
            if v == "(" or v == "{" or v == "[" or (kw and OPENS[v]) then depth = depth + 1
            elseif v == ")" or v == "}" or v == "]" or (kw and (v == "end" or v == "until")) then depth = depth - 1 end
            last = toks[j]
            j = j + 1
          end
          -- a call or ... as the last argument may stand for several
          local open_ended = last and (last.v == ")" or last.v == "...")
          if n > ar.max then
            add(prev, format("%s takes at most %d argument%s, given %d", id, ar.max, ar.max == 1 and "" or "s", n))
          elseif n < ar.min and not open_ended then
            add(prev, format("%s needs at least %d argument%s, given %d", id, ar.min, ar.min == 1 and "" or "s", n))
          end
        end
        local opts = id and options[id]
        if opts then
          local arg, depth, j = 1, 0, i + 1
          while toks[j] and toks[j].t ~= "eof" do
            local v = toks[j].v
            if depth == 0 and v == ")" then break end
            if depth == 0 and v == "," then arg = arg + 1 end
            -- only a table written right there as the argument (not `f {…}` inside it)
            if depth == 0 and v == "{" and opts[arg] and (toks[j - 1].v == "(" or toks[j - 1].v == ",") then
              -- keys at this table's top level
              local d, k = 0, j
              repeat
                local tv, kw = toks[k].v, toks[k].t == "kw"
                if tv == "{" or tv == "(" or tv == "[" or (kw and OPENS[tv]) then d = d + 1
                elseif tv == "}" or tv == ")" or tv == "]" or (kw and (tv == "end" or tv == "until")) then d = d - 1 end
                if d == 1 and toks[k].t == "name" and toks[k + 1].v == "=" and (toks[k - 1].v == "{" or toks[k - 1].v == "," or toks[k - 1].v == ";")
                  and not opts[arg][toks[k].v] then
                  add(toks[k], format("%s: unknown option '%s'%s", id, toks[k].v, did_you_mean(toks[k].v, keys_of(opts[arg]))))
                end
                k = k + 1
              until d == 0 or toks[k].t == "eof"
            end
            if v == "(" or v == "{" or v == "[" or (toks[j].t == "kw" and OPENS[v]) then depth = depth + 1
            elseif v == ")" or v == "}" or v == "]" or (toks[j].t == "kw" and (v == "end" or v == "until")) then depth = depth - 1 end
            j = j + 1
          end
        end
      end
    end
  end
  table.sort(findings, function(a, b)
    if a.file ~= b.file then return a.file < b.file end
    if a.line ~= b.line then return a.line < b.line end
    return a.col < b.col
  end)
  return findings
end

return M
