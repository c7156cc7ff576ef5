-- engine.lint: what `engine check` finds in a runbook and its own modules before anything runs.
-- A token-level pass (no full parser): the mistakes that otherwise surface mid-rollout as "attempt
-- to call a nil value" after changes were made.
--   * a field of an engine or std module that does not exist (k8s.node, fleet.eachh), with the
--     closest existing name;
--   * a method no object has (h:exce), checked against every method the engine's objects, the
--     string library and the files themselves define;
--   * an unknown key in a literal option table passed to a function the API documents
--     (fleet.each(hosts, {at_onec = 2}, fn), h:exec(cmd, {suod = true}));
--   * too few or too many arguments to a documented function, method or global;
--   * a name used as a global that is neither the sandbox's nor a local in scope there (Lua's
--     scopes: a block's locals end with it), and a global assigned or a global function defined
--     (the sandbox refuses both at run time);
--   * p.NAME in the runbook's run(p) where the runbook declares no param NAME;
--   * warnings: unused locals, one step name twice in one block.
-- What it knows of the API comes from the modules themselves (their real tables) and from the
-- LuaCATS definitions in stdlib/meta read by engine.luacats (arguments, option tables, methods),
-- the same description `engine api` prints as docs/api.md's reference tables.
local luacats = require "engine.luacats"

local M = {}

local format = string.format

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or repeat
return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

--- tokens(text) → { {t = "name"|"string"|"number"|"op"|"kw"|"eof", v = text, line, col} ... }
--- A string's v is '"' and its contents are s: a string ")" or "=" never passes for an operator.
local function tokens(src)
  local out, i, line, col0, n = {}, 1, 1, 0, #src
  local function push(t, v, at)
    if t == "string" then
      out[#out + 1] = { t = t, v = '"', s = v, line = line, col = at - col0 }
    else
      out[#out + 1] = { t = t, v = v, line = line, col = at - col0 }
    end
  end
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
      push("string", (s:gsub("\\(.)", "%1")), i); newlines(src:sub(i, j)); i = j + 1
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

-- What the description says each call takes, by the id a finding names: "engine.fleet.each",
-- "step", "log.info", and methods by name ("exec" → {{id = "Host:exec", f}}).
local function api_index(desc)
  local options, arity, by_method = {}, {}, {}
  local function add(id, f)
    arity[id] = luacats.arity(f)
    for i, p in ipairs(f.params) do
      local keys = luacats.keys_of_type(desc, p.type)
      if keys then options[id] = options[id] or {}; options[id][i] = keys end
    end
  end
  for modname, mod in pairs(desc.modules) do
    for _, f in ipairs(mod.functions) do add(modname == "globals" and f.qualified or (modname .. "." .. f.name), f) end
  end
  for cname, c in pairs(desc.classes) do
    for _, f in ipairs(c.methods) do
      local id = cname:match("([%w_]+)$") .. ":" .. f.name
      add(id, f)
      by_method[f.name] = by_method[f.name] or {}
      table.insert(by_method[f.name], id)
    end
  end
  return options, arity, by_method
end

-- (a string ")" is no bracket)
local function opens(tok)
  return (tok.t == "op" and (tok.v == "(" or tok.v == "{" or tok.v == "[")) or (tok.t == "kw" and OPENS[tok.v] ~= nil)
end
local function closes(tok)
  return (tok.t == "op" and (tok.v == ")" or tok.v == "}" or tok.v == "]")) or (tok.t == "kw" and (tok.v == "end" or tok.v == "until"))
end

-- The arguments of the call whose "(" is toks[i]: how many at its top level, the last token, and
-- for each argument its first token's index.
local function call_args(toks, i)
  local n, depth, j, last, starts = 0, 0, i + 1, nil, {}
  while toks[j] and toks[j].t ~= "eof" do
    local tok = toks[j]
    if depth == 0 and tok.v == ")" then break end
    if depth == 0 and n == 0 then n = 1; starts[1] = j end
    if depth == 0 and tok.v == "," then n = n + 1; starts[n] = j + 1 end
    if opens(tok) then depth = depth + 1 elseif closes(tok) then depth = depth - 1 end
    last = tok
    j = j + 1
  end
  return n, last, starts
end

--- check(sources, defs, known_globals, params) → findings {file, line, col, msg}
--- sources: {path = text} (the runbook and its own modules); defs: {path = text} (the LuaCATS files of stdlib/meta);
--- known_globals: names the sandbox provides; params: the runbook's param names, when sources
--- hold a runbook (its run(p, ...) reads only those).
function M.check(sources, defs, known_globals, params, runbook_path)
  local findings = {}
  local desc = luacats.describe(defs)
  local options, arity, by_method = api_index(desc)
  -- Every method and field name a file or the definitions declare: a method call on anything must be one.
  local methods, own = {}, {}
  for k in pairs(string) do methods[k] = true; own[k] = true end
  for name in pairs(by_method) do methods[name] = true end
  local streams = {}
  for path, text in pairs(sources) do
    local toks = tokens(text)
    streams[path] = toks
    for i = 1, #toks - 1 do
      local a, b = toks[i], toks[i + 1]
      if a.t == "name" and b.t == "op" and b.v == "=" then methods[a.v] = true; own[a.v] = true end
      if a.t == "op" and (a.v == ":" or a.v == ".") and b.t == "name" and toks[i - 2] and toks[i - 2].v == "function" then
        methods[b.v] = true; own[b.v] = true
      end
      if a.t == "kw" and a.v == "function" and b.t == "name" then methods[b.v] = true; own[b.v] = true end
    end
  end
  local method_list = keys_of(methods)
  local globals = {}
  for _, g in ipairs(known_globals) do globals[g] = true end
  local global_list = keys_of(globals)
  local param_set, param_list
  if params then
    param_set = {}
    for _, n in ipairs(params) do param_set[n] = true end
    param_list = keys_of(param_set)
  end

  for path, toks in pairs(streams) do
    local function add(tok, msg) findings[#findings + 1] = { file = path, line = tok.line, col = tok.col, msg = msg } end
    local function warn(tok, msg) findings[#findings + 1] = { file = path, line = tok.line, col = tok.col, msg = "warning: " .. msg } end
    -- module aliases: local NAME = require "MOD", by the token that declares NAME (a later local of
    -- the same name in an inner scope is another variable: `local text = tostring(err)`)
    local alias_at = {}
    for i = 1, #toks - 4 do
      local t = toks
      if t[i].v == "local" and t[i + 1].t == "name" and t[i + 2].v == "=" and t[i + 3].v == "require" then
        local modtok = t[i + 4].v == "(" and t[i + 5] or t[i + 4]
        if modtok.t == "string" then
          local ok, mod = pcall(require, modtok.s)
          if ok and type(mod) == "table" then alias_at[t[i + 1]] = { name = modtok.s, tbl = mod } end
        end
      end
    end

    -- Scopes as Lua has them: a block's locals are visible from their declaration to its end.
    local scopes, lingering = {}, nil
    local function push(kind) scopes[#scopes + 1] = { kind = kind, names = {}, order = {}, steps = {} } end
    local ended = {}  -- name → where a block holding a local of that name ended
    local function settle(sc, at)  -- the block ends (or an if's branch does): its locals are done
      for _, d in ipairs(sc.order) do
        if at then ended[d.tok.v] = at end
        if not d.used and d.kind == "local" and d.tok.v:sub(1, 1) ~= "_" and not d.close then
          warn(d.tok, format("unused local '%s'", d.tok.v))
        end
      end
      sc.names, sc.order, sc.steps = {}, {}, {}
    end
    local function pop(at)
      local sc = table.remove(scopes)
      if sc then settle(sc, at) end
      return sc
    end
    local function declare(tok, kind)
      local d = { tok = tok, kind = kind, used = false }
      local sc = scopes[#scopes]
      sc.names[tok.v] = d
      sc.order[#sc.order + 1] = d
      return d
    end
    local function lookup(name, tok)
      for k = #scopes, 1, -1 do
        local d = scopes[k].names[name]
        if d then return d end
      end
      if lingering and lingering.line == tok.line then return lingering.sc.names[name] end
    end
    push("file")
    local skip = {}          -- tokens that declare a name (not uses of it)
    local params_decl        -- the `p` of the runbook's run = function(p, ...)
    local brace_depth = 0
    -- declares the names of a parameter list starting at toks[j] == "("; returns the index of ")"
    local function parameters(j, first)
      j = j + 1
      local k = 0
      while toks[j] and toks[j].v ~= ")" and toks[j].t ~= "eof" do
        if toks[j].t == "name" then
          k = k + 1
          local d = declare(toks[j], "param")
          skip[j] = true
          if k == 1 and first then params_decl = d end
        end
        j = j + 1
      end
      return j
    end

    for i = 1, #toks do
      local t, prev, nxt = toks[i], toks[i - 1], toks[i + 1]
      if lingering and t.line ~= lingering.line then settle(lingering.sc, toks[i - 1]); lingering = nil end
      if t.t == "op" and t.v == "{" then brace_depth = brace_depth + 1 elseif t.t == "op" and t.v == "}" then brace_depth = brace_depth - 1 end
      if t.t == "kw" then
        if t.v == "local" then
          local j = i + 1
          if toks[j].v == "function" then
            -- visible in its own body (recursion): declared before the body's scope opens
            if toks[j + 1].t == "name" then declare(toks[j + 1], "local"); skip[j + 1] = true end
          else
            local decl = {}
            while toks[j] and toks[j].t == "name" do
              decl[#decl + 1] = j
              j = j + 1
              if toks[j] and toks[j].v == "<" then
                if toks[j + 1].v == "close" then decl.close = decl.close or {}; decl.close[#decl] = true end
                j = j + 3
              end
              if toks[j] and toks[j].v == "," then j = j + 1 else break end
            end
            -- (`local x = x` reads the outer x; declared here already, a token pass misses that one)
            for n, at in ipairs(decl) do
              local d = declare(toks[at], "local")
              d.close = decl.close and decl.close[n]
              skip[at] = true
            end
          end
        elseif t.v == "function" then
          local j = i + 1
          local method = false
          if toks[j].t == "name" then
            local name_tok = toks[j]
            local dotted = toks[j + 1].v == "." or toks[j + 1].v == ":"
            if not dotted and not (prev and prev.v == "local") then
              -- function NAME(): a global, which the sandbox refuses at run time unless NAME is a local
              local d = lookup(name_tok.v, name_tok)
              if d then d.used = true
              elseif not globals[name_tok.v] then
                add(name_tok, format("assignment to undeclared global '%s' (declare it: local function %s)", name_tok.v, name_tok.v))
              end
              skip[j] = true
            elseif dotted then
              local d = lookup(name_tok.v, name_tok)
              if d then d.used = true end
              skip[j] = true
            end
            while toks[j] and toks[j].v ~= "(" do
              if toks[j].v == ":" then method = true end
              if toks[j].t == "name" then skip[j] = true end
              j = j + 1
            end
          end
          push("function")
          if method then declare({ v = "self", line = t.line, col = t.col }, "param") end
          local first = prev and prev.v == "=" and toks[i - 2] and toks[i - 2].v == "run" and brace_depth > 0
            and path == runbook_path
          parameters(j, first)
        elseif t.v == "for" then
          push("for")
          scopes[#scopes].pending_do = true
          local j = i + 1
          while toks[j] and toks[j].v ~= "in" and toks[j].v ~= "=" and toks[j].t ~= "eof" do
            if toks[j].t == "name" then declare(toks[j], "loop"); skip[j] = true end
            j = j + 1
          end
        elseif t.v == "while" then
          push("while")
          scopes[#scopes].pending_do = true
        elseif t.v == "do" then
          if scopes[#scopes].pending_do then scopes[#scopes].pending_do = nil else push("do") end
        elseif t.v == "if" then
          push("if")
        elseif t.v == "elseif" or t.v == "else" then
          settle(scopes[#scopes], t)
        elseif t.v == "repeat" then
          push("repeat")
        elseif t.v == "until" then
          -- `repeat local x = ... until x`: the body's locals stay visible in the condition (to the
          -- end of its line, as far as a token pass can tell where it ends)
          if #scopes > 1 then lingering = { line = t.line, sc = table.remove(scopes) } end
        elseif t.v == "end" then
          if #scopes > 1 then pop(t) end
        end
      end

      if t.t == "name" and not skip[i] then
        local is_field = prev and (prev.v == "." or prev.v == ":" or prev.v == "::" or prev.v == "goto")
        local is_key = nxt.v == "=" and prev and (prev.v == "{" or prev.v == "," or prev.v == ";") and brace_depth > 0
        local is_label = nxt.v == "::" or (prev and prev.v == "<" and nxt.v == ">")
        if is_field then
          local base = toks[i - 2]
          local base_decl = base and base.t == "name" and not (toks[i - 3] and (toks[i - 3].v == "." or toks[i - 3].v == ":"))
            and lookup(base.v, base)
          if prev.v == "." and base_decl and base_decl == params_decl and param_set and nxt.v ~= "=" and not param_set[t.v] then
            add(t, format("the runbook declares no param '%s'%s", t.v, did_you_mean(t.v, param_list)))
          elseif (prev.v == "." or prev.v == ":") and base_decl and alias_at[base_decl.tok]
            and not (toks[i - 3] and (toks[i - 3].v == "." or toks[i - 3].v == ":" or toks[i - 3].v == "function"))
            and nxt.v ~= "=" then
            local a = alias_at[base_decl.tok]
            if a.tbl[t.v] == nil then
              add(t, format("module '%s' has no field '%s'%s", a.name, t.v, did_you_mean(t.v, keys_of(a.tbl))))
            end
          elseif prev.v == ":" and nxt and (nxt.v == "(" or nxt.t == "string" or nxt.v == "{")
            and not (toks[i - 3] and toks[i - 3].v == "function") and not methods[t.v] then
            add(t, format("no object the engine knows has a method '%s'%s", t.v, did_you_mean(t.v, method_list)))
          end
        elseif not is_key and not is_label then
          local d = lookup(t.v, t)
          if d then
            d.used = true
          elseif not globals[t.v] then
            if nxt.v == "=" then  -- a statement (table keys were skipped above)
              add(t, format("assignment to undeclared global '%s' (declare it: local %s = ...)", t.v, t.v))
            else
              local gone = ended[t.v]
              add(t, format("undefined global '%s'%s", t.v, gone
                and format(" (a local '%s' ended with its block at line %d)", t.v, gone.line) or did_you_mean(t.v, global_list)))
            end
          elseif t.v == "step" and nxt.v == "(" and toks[i + 2].t == "string" and (toks[i + 3].v == "," or toks[i + 3].v == ")") then
            -- one name twice in one block: a resume tells them apart only by their order
            local sc, name = scopes[#scopes], toks[i + 2].s
            local before = sc.steps[name]
            if before then
              warn(toks[i + 2], format("step '%s' is already used at line %d in this block: give each step its own name", name, before.line))
            else
              sc.steps[name] = toks[i + 2]
            end
          end
        end
      end

      -- Calls of documented functions: how many arguments, and the keys of literal option tables.
      if t.v == "(" and prev and prev.t == "name" and not skip[i - 1] then  -- a call, not a function's header
        local id
        local sep, base = toks[i - 2], toks[i - 3]
        if sep and sep.v == "." and base and base.t == "name" and not (toks[i - 4] and (toks[i - 4].v == "." or toks[i - 4].v == ":")) then
          local d = lookup(base.v, base)
          if d and alias_at[d.tok] then
            id = alias_at[d.tok].name .. "." .. prev.v
          elseif base.v == "log" and not lookup("log", base) then
            id = "log." .. prev.v
          end
        elseif sep and sep.v == ":" then
          local ids = by_method[prev.v]
          if ids and #ids == 1 and not own[prev.v] then id = ids[1] end
        elseif not (sep and (sep.v == "." or sep.v == ":")) and not lookup(prev.v, prev) then
          id = prev.v  -- a global function
        end
        local ar = id and arity[id]
        if ar then
          local n, last = call_args(toks, i)
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
          local _, _, starts = call_args(toks, i)
          for arg, keys in pairs(opts) do
            local j = starts[arg]
            -- only a table written right there as the argument (not `f {…}` inside it)
            if j and toks[j].v == "{" then
              local d, k = 0, j
              repeat
                local tk = toks[k]
                if opens(tk) then d = d + 1 elseif closes(tk) then d = d - 1 end
                if d == 1 and tk.t == "name" and toks[k + 1].v == "=" and (toks[k - 1].v == "{" or toks[k - 1].v == "," or toks[k - 1].v == ";")
                  and not keys[tk.v] then
                  add(tk, format("%s: unknown option '%s'%s", id, tk.v, did_you_mean(tk.v, keys_of(keys))))
                end
                k = k + 1
              until d == 0 or toks[k].t == "eof"
            end
          end
        end
      end
    end
    if lingering then settle(lingering.sc) end
    while #scopes > 0 do pop() end
  end
  table.sort(findings, function(a, b)
    if a.file ~= b.file then return a.file < b.file end
    if a.line ~= b.line then return a.line < b.line end
    return a.col < b.col
  end)
  return findings
end

return M
