-- std.ahead.alongside: fn walks the "web" hosts while the "db" hosts are prepared.
local fleet = require "engine.fleet"
local ahead = require "std.ahead"
return runbook {
  name = "ahead",
  summary = "prepare the db hosts while the web hosts are visited",
  params = {
    main_nap = { type = "duration", default = "1s" },
    prep_nap = { type = "duration", default = "200ms" },
    fail_prepare = { type = "list", default = {} },
    fail_main = { type = "boolean", default = false },
    in_turn = { type = "boolean", default = false },
  },
  run = function(p, inv)
    if p.in_turn then
      -- Inside a host's turn: the rest of web<i>'s work runs while db<i> is prepared.
      fleet.each(inv:group("web"), { at_once = 1 }, function(h)
        step("first half", function() end)
        local db = inv:host("db" .. h.name:match("%d+$"))
        ahead.alongside(function()
          step("second half", function() sleep(p.main_nap) log.info("finishing") end)
        end, { db }, { at_once = 1 }, function(d)
          step("prepare", function() log.info("preparing") end)
        end)
      end)
      return
    end
    local fails = {}
    for _, n in ipairs(p.fail_prepare) do fails[n] = true end
    local got = ahead.alongside(function()
      fleet.each(inv:group("web"), { at_once = 1 }, function(h)
        log.info("visiting")
        sleep(p.main_nap)
        if p.fail_main then fail("planned failure on %s", h.name) end
        log.info("visited")
      end)
      return "main result"
    end, inv:group("db"), { at_once = 1 }, function(h)
      log.info("preparing")
      sleep(p.prep_nap)
      if fails[h.name] then error("planned prepare failure on " .. h.name, 0) end
      log.info("prepared")
    end)
    log.info("alongside returned", { value = got })
  end,
}
