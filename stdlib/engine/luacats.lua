-- engine.luacats: the API's one machine-readable description, read from the LuaCATS definitions in
-- stdlib/meta. Editors read those files directly; `engine check` takes the modules' functions,
-- arities, option tables and methods from here; `engine api` prints the reference tables of
-- docs/api.md (and the same as JSON) from here. So the definitions, the checker and the reference cannot
-- drift apart: a test keeps the definitions in step with the modules' real tables, and another keeps
-- docs/api.md's generated tables equal to `engine api`'s output.
local M = {}

local format = string.format

-- "type  doc" → type, doc. The definitions separate a type from its words by two spaces; a type with no
-- words after it may still hold single spaces inside fun(...) or {...}.
local function split_type(rest)
  local ty, doc = rest:match("^(.-)%s%s+(.*)$")
  if ty then return ty, doc end
  local depth = 0
  for i = 1, #rest do
    local c = rest:sub(i, i)
    if c == "(" or c == "{" or c == "<" then depth = depth + 1
    elseif c == ")" or c == "}" or c == ">" then depth = depth - 1
    elseif c == " " and depth == 0 and not rest:sub(i - 1, i - 1):match("[:,|]") then
      return rest:sub(1, i - 1), rest:sub(i + 1)
    end
  end
  return rest, ""
end
M.split_type = split_type

-- "(default: 5)", "(default 5)", "default 5" in a field's words.
local function default_of(doc)
  return doc:match("%(default:? ([^)]*)%)") or doc:match("^default:? (.*)$")
end

-- The first sentence: up to a full stop followed by a capital ("... { ... }" or "e.g. x" do not end one).
local function first_sentence(doc)
  return doc:match("^(.-[%.!?])%s+%u") or doc
end

--- describe(defs) → {modules = {name → module}, classes = {name → class}, globals = module}
--- defs: {path = text} of stdlib/meta. A module: {name, file, doc, functions = {list}, fields = {list}};
--- a function: {name, owner, method (bool), params = {{name, type, optional, doc}}, varargs,
--- returns = {{type, doc}}, doc, yields, alias (the function it is, "std.remote.must")};
--- a class: {name, parent, fields = {{name, type, optional, doc, default}}, methods = {list}}.
function M.describe(defs)
  local modules, classes = {}, {}
  local paths = {}
  for path in pairs(defs) do paths[#paths + 1] = path end
  table.sort(paths)
  for _, path in ipairs(paths) do
    local text = defs[path]
    local modname = text:match("^%-%-%-@meta ([%w_.]+)") or "globals"
    local returned = text:match("\nreturn ([%w_]+)%s*$")
    local mod = { name = modname, file = path, functions = {}, fields = {},
                  doc = (text:match("^%-%-%-@meta [^\n]*\n%-%- (.-)\n\n") or ""):gsub("\n%-%- ", " ") }
    modules[modname] = mod
    local locals = {}      -- local NAME = {} tables: their class, or a required module
    local cls, pending = nil, nil
    local function fresh() return { doc = {}, params = {}, returns = {} } end
    pending = fresh()
    local last_class
    for l in (text .. "\n"):gmatch("([^\n]*)\n") do
      local cname, parent = l:match("^%-%-%-@class ([%w_.]+):?%s*([%w_.%[%]]*)")
      if cname then
        -- a class declared in two files (engine.Host: its fields in globals, its methods in ssh) is one
        cls = classes[cname] or { name = cname, fields = {}, methods = {}, module = modname }
        cls.parent = cls.parent or (parent ~= "" and parent or nil)
        classes[cname] = cls
        last_class = cname
        pending = fresh()
      elseif l:match("^%-%-%-@field ") and cls then
        local fname, opt, rest = l:match("^%-%-%-@field ([%w_]+)(%??)%s+(.*)$")
        if fname then
          local ty, doc = split_type(rest)
          cls.fields[#cls.fields + 1] = { name = fname, type = ty, optional = opt == "?", doc = doc, default = default_of(doc) }
        end
      elseif l:match("^%-%-%-@param ") then
        local pname, opt, rest = l:match("^%-%-%-@param ([%w_.]+)(%??)%s+(.*)$")
        if pname then
          local ty, doc = split_type(rest)
          pending.params[pname] = { type = ty, optional = opt == "?" or ty:match("|nil$") ~= nil or ty == "any", doc = doc }
        end
      elseif l:match("^%-%-%-@return ") then
        local ty, doc = split_type(l:match("^%-%-%-@return (.*)$"))
        pending.returns[#pending.returns + 1] = { type = ty, doc = doc }
      elseif l:match("^%-%-%-@") then
        -- @alias, @type, @overload: not part of what is described
      elseif l:match("^%-%-%- ") or l == "---" then
        pending.doc[#pending.doc + 1] = l:sub(5)
      else
        local lname, rhs = l:match("^local ([%w_]+)%s*=%s*(.-)%s*$")
        if lname then
          local req = rhs:match("^require%s*%(?%s*[\"']([%w_.]+)[\"']")
          locals[lname] = req and { module = req } or (rhs == "{}" and { class = last_class }) or nil
        end
        local owner, sep, fname, args = l:match("^function ([%w_]+)([.:])([%w_]+)%((.-)%)")
        if not owner then fname, args = l:match("^function ([%w_]+)%((.-)%)") end
        if fname then
          local f = { name = fname, owner = owner, method = sep == ":", params = {}, returns = pending.returns,
                      doc = table.concat(pending.doc, " ") }
          f.yields = f.doc:match("[Yy]ields[%.;,]?%s") ~= nil or f.doc:match("[Yy]ields%.?$") ~= nil
          for a in args:gmatch("[^,%s]+") do
            if a == "..." then
              f.varargs = true
            else
              local p = pending.params[a] or {}
              f.params[#f.params + 1] = { name = a, type = p.type, optional = p.optional or false, doc = p.doc or "",
                                          documented = p.type ~= nil }
            end
          end
          local home = owner and locals[owner]
          if sep == ":" and home and home.class then
            f.class = home.class
            local c = classes[home.class]
            c.methods[#c.methods + 1] = f
          elseif not owner or owner == returned or (owner and modname == "globals") then
            f.qualified = owner and (owner .. "." .. fname) or fname
            mod.functions[#mod.functions + 1] = f
          end
          pending = fresh()
        else
          -- NAME.field = value: a constant, or another function under this name
          local o, field, value = l:match("^([%w_]+)%.([%w_]+)%s*=%s*(.-)%s*$")
          if o and o == returned then
            local src_owner, src_name = value:match("^([%w_]+)[.:]([%w_]+)$")
            local home = src_owner and locals[src_owner]
            if home then
              mod.functions[#mod.functions + 1] = { name = field, qualified = o .. "." .. field, alias_of = home,
                                                    alias_name = src_name, doc = table.concat(pending.doc, " ") }
            else
              mod.fields[#mod.fields + 1] = { name = field, value = value, doc = table.concat(pending.doc, " ") }
            end
          end
          if l ~= "" or #pending.doc > 0 then pending = fresh() end
          if not l:match("^%-%-") then cls = nil end
        end
      end
    end
  end
  -- Aliases take the signature of what they name: a method under a module name takes the host first.
  -- One that names a constant of another module is that constant.
  for _, mod in pairs(modules) do
    local fns = {}
    for _, f in ipairs(mod.functions) do
      if not f.alias_of then
        fns[#fns + 1] = f
      else
        local target, constant
        if f.alias_of.class then
          for _, m in ipairs(classes[f.alias_of.class].methods) do
            if m.name == f.alias_name then target = m end
          end
        elseif modules[f.alias_of.module] then
          for _, m in ipairs(modules[f.alias_of.module].functions) do
            if m.name == f.alias_name then target = m end
          end
          for _, c in ipairs(modules[f.alias_of.module].fields) do
            if c.name == f.alias_name then constant = c end
          end
        end
        if target then
          local copy = { name = f.name, qualified = f.qualified, params = {}, returns = target.returns,
                         doc = f.doc ~= "" and f.doc or target.doc, yields = target.yields, varargs = target.varargs,
                         alias = target.class and (target.class .. ":" .. target.name) or
                           (f.alias_of.module .. "." .. target.name) }
          if target.method then
            copy.params[1] = { name = "host", type = "engine.Host|string", optional = false, doc = "", documented = true }
          end
          for _, p in ipairs(target.params) do copy.params[#copy.params + 1] = p end
          fns[#fns + 1] = copy
        elseif constant then
          mod.fields[#mod.fields + 1] = { name = f.name, value = constant.value, doc = f.doc }
        else
          error(format("%s: %s names %s.%s, which no definition declares", mod.file, f.qualified,
                       f.alias_of.class or f.alias_of.module, f.alias_name))
        end
      end
    end
    mod.functions = fns
  end
  return { modules = modules, classes = classes }
end

-- The fields of a class with its parents' (a parent may be a class of the description or a type).
function M.class_fields(desc, name, seen)
  local c = desc.classes[name]
  seen = seen or {}
  if not c or seen[name] then return nil end
  seen[name] = true
  local out = {}
  for _, f in ipairs(c.fields) do out[f.name] = f end
  if c.parent then
    for k, f in pairs(M.class_fields(desc, c.parent, seen) or {}) do out[k] = out[k] or f end
  end
  return out
end

--- The option keys a type admits: a class's fields (and its parents'), or the keys of a literal
--- {a: T, b?: T} type; nil when the type is not a table of known keys.
function M.keys_of_type(desc, ty)
  if not ty then return nil end
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
    -- a class derived from table (a Kubernetes object) is open: any key may be written
    local c, seen = desc.classes[(part:gsub("%?$", ""))], {}
    while c and not seen[c] do
      seen[c] = true
      if c.parent and c.parent:match("^table") then return nil end
      c = c.parent and desc.classes[c.parent]
    end
    local fields = M.class_fields(desc, (part:gsub("%?$", "")))
    if fields then for k in pairs(fields) do out[k] = true; any = true end end
  end
  return any and out or nil
end

--- How many arguments a function needs and takes: {min, max}. Every argument is documented (a test
--- holds the definitions to it); the required ones are those before the first optional one.
function M.arity(f)
  local min, optional_seen = 0, false
  for i, p in ipairs(f.params) do
    if p.optional then optional_seen = true elseif not optional_seen then min = i end
  end
  return { min = min, max = f.varargs and math.huge or #f.params }
end

local function cell(s)
  return (tostring(s or ""):gsub("|", "\\|"):gsub("\n", " "))
end

local function signature(f, prefix)
  if f.qualified then prefix = f.qualified:match("^(.-)[%w_]+$") end
  local args = {}
  for _, p in ipairs(f.params) do args[#args + 1] = p.name .. (p.optional and "?" or "") end
  if f.varargs then args[#args + 1] = "..." end
  return format("%s%s(%s)", prefix, f.name, table.concat(args, ", "))
end

local function returns_of(f)
  local r = {}
  for _, ret in ipairs(f.returns or {}) do r[#r + 1] = ret.type end
  return table.concat(r, ", ")
end

local function function_rows(out, fns, prefix)
  out[#out + 1] = "| call | yields | returns | what it does |"
  out[#out + 1] = "|---|---|---|---|"
  local sorted = {}
  for _, f in ipairs(fns) do sorted[#sorted + 1] = f end
  table.sort(sorted, function(a, b) return a.name < b.name end)
  for _, f in ipairs(sorted) do
    local what = first_sentence(f.doc or "")
    if f.alias then what = (what ~= "" and what .. " " or "") .. format("(the same function as `%s`)", f.alias) end
    out[#out + 1] = format("| `%s` | %s | %s | %s |", cell(signature(f, prefix)), f.yields and "yes" or "",
                           returns_of(f) ~= "" and "`" .. cell(returns_of(f)) .. "`" or "", cell(what))
  end
end

--- The reference tables of docs/api.md: per module its functions, its classes' methods, and every
--- option or result class with its fields and defaults.
function M.markdown(desc)
  local out = {}
  local names = {}
  for name in pairs(desc.modules) do names[#names + 1] = name end
  table.sort(names, function(a, b)
    if (a == "globals") ~= (b == "globals") then return a == "globals" end
    return a < b
  end)
  for _, name in ipairs(names) do
    local mod = desc.modules[name]
    out[#out + 1] = ""
    out[#out + 1] = name == "globals" and "### Globals" or format('### %s', name)
    out[#out + 1] = ""
    if #mod.functions > 0 then
      local plain, globals_by_owner = {}, {}
      for _, f in ipairs(mod.functions) do
        if name == "globals" and f.owner then
          globals_by_owner[#globals_by_owner + 1] = f
        else
          plain[#plain + 1] = f
        end
      end
      if #plain > 0 then function_rows(out, plain, "") end
      if #globals_by_owner > 0 then
        out[#out + 1] = ""
        function_rows(out, globals_by_owner, "")
      end
    end
    if #mod.fields > 0 then
      out[#out + 1] = ""
      out[#out + 1] = "| constant | value |"
      out[#out + 1] = "|---|---|"
      for _, f in ipairs(mod.fields) do out[#out + 1] = format("| `%s` | `%s` |", f.name, cell(f.value)) end
    end
    local cnames = {}
    for cname, c in pairs(desc.classes) do if c.module == name then cnames[#cnames + 1] = cname end end
    table.sort(cnames)
    for _, cname in ipairs(cnames) do
      local c = desc.classes[cname]
      if #c.methods > 0 then
        out[#out + 1] = ""
        out[#out + 1] = format("`%s` methods:", cname)
        out[#out + 1] = ""
        function_rows(out, c.methods, cname:match("([%w_]+)$"):lower() .. ":")
      end
      if #c.fields > 0 then
        out[#out + 1] = ""
        out[#out + 1] = format("`%s`%s:", cname, c.parent and format(" (and every field of `%s`)", c.parent) or "")
        out[#out + 1] = ""
        out[#out + 1] = "| field | type | default | meaning |"
        out[#out + 1] = "|---|---|---|---|"
        for _, f in ipairs(c.fields) do
          out[#out + 1] = format("| `%s%s` | `%s` | %s | %s |", f.name, f.optional and "?" or "", cell(f.type),
                                 f.default and "`" .. cell(f.default) .. "`" or "",
                                 cell((f.doc:gsub("%s*%(default:? [^)]*%)", ""))))
        end
      end
    end
  end
  return (table.concat(out, "\n"):gsub("^\n", ""):gsub("\n\n\n+", "\n\n")) .. "\n"
end

--- `engine api`: the tables from the definitions themselves.
function M.markdown_of(defs) return M.markdown(M.describe(defs)) end

--- `engine api --json`: the description as data, for other tools (sorted lists, no cycles).
function M.json(defs)
  local http = require "engine.http"
  local A = http.json_array  -- a list stays a list in JSON when empty
  local desc = M.describe(defs)
  local function fn(f)
    local params = {}
    for _, p in ipairs(f.params) do
      params[#params + 1] = { name = p.name, type = p.type, optional = p.optional, doc = p.doc }
    end
    local returns = {}
    for _, r in ipairs(f.returns or {}) do returns[#returns + 1] = { type = r.type, doc = r.doc } end
    return { name = f.qualified or f.name, params = A(params), varargs = f.varargs or false, returns = A(returns),
             doc = f.doc, yields = f.yields or false, alias = f.alias }
  end
  local function sorted_keys(t)
    local out = {}
    for k in pairs(t) do out[#out + 1] = k end
    table.sort(out)
    return out
  end
  local out = { modules = A(), classes = A() }
  for _, name in ipairs(sorted_keys(desc.modules)) do
    local mod = desc.modules[name]
    local fns, consts = {}, {}
    for _, f in ipairs(mod.functions) do fns[#fns + 1] = fn(f) end
    table.sort(fns, function(a, b) return a.name < b.name end)
    for _, c in ipairs(mod.fields) do consts[#consts + 1] = { name = c.name, value = c.value } end
    out.modules[#out.modules + 1] = { name = name, file = mod.file, functions = A(fns), constants = A(consts) }
  end
  for _, name in ipairs(sorted_keys(desc.classes)) do
    local c = desc.classes[name]
    local fields, methods = {}, {}
    for _, f in ipairs(c.fields) do
      fields[#fields + 1] = { name = f.name, type = f.type, optional = f.optional, doc = f.doc, default = f.default }
    end
    for _, m in ipairs(c.methods) do methods[#methods + 1] = fn(m) end
    out.classes[#out.classes + 1] = { name = name, parent = c.parent, module = c.module, fields = A(fields),
                                      methods = A(methods) }
  end
  return http.json_encode(out)
end

return M
