local function check_disk(node)
  local free = node.free
  if free < 10 then
    error("only " .. free .. "% free on " .. node.name)
  end
end

return runbook {
  name = "runtime-error",
  run = function(p, inv)
    check_disk({ name = "cp1", free = 3 })
  end,
}
