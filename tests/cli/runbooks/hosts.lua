-- Host tables as runbooks see them: name, vars and groups (filled in on first use), methods.
return runbook {
  name = "hosts",
  run = function(p, inv)
    local a = inv:host("a")
    assert(a.vars.zone == "z1" and a.vars.role == "db", "vars of a")
    local in_db = false
    for _, g in ipairs(a.groups) do in_db = in_db or g == "db" end
    assert(in_db, "a is in db")
    assert(type(a.exec) == "function", "methods still reachable")
    assert(inv:host("a") == a, "one table per host")
    -- pairs on a host nobody has read yet sees every field; a runbook cannot take `next` away
    assert(not pcall(function() next = nil end), "next replaced")
    local keys = {}
    for k in pairs(inv:host("b")) do keys[#keys + 1] = k end
    table.sort(keys)
    assert(table.concat(keys, ",") == "groups,name,vars", table.concat(keys, ","))
    -- a runbook's own vars, set before any read, stay its own
    local c = inv:host("c")
    c.vars = { mine = true }
    assert(c.vars.mine and c.vars.zone == nil)
    -- a host in a log line carries its vars though nobody read them
    log.info("host d", { host = inv:host("d") })
    print("HOSTS OK")
  end,
}
