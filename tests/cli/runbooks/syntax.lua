return runbook {
  name = "broken",
  run = function(p inv)
  end,
}
