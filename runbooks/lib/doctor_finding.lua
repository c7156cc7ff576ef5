-- A doctor finding: {name, severity, node, evidence, see, runbook}: what was found, on which node
-- (nil: the cluster), the facts, the command an SRE would run to see it, and the runbook that
-- answers it. Shared by doctor_checks and doctor_etcd.
local M = {}

--- add(out, name, severity, node, evidence, see, runbook): one finding appended to out.
function M.add(out, name, severity, node, evidence, see, runbook)
  out[#out + 1] = { name = name, severity = severity, node = node, evidence = evidence, see = see, runbook = runbook }
end

--- section(text, name) → the lines under "## name" in a command's output, up to the next "## ".
function M.section(text, name)
  return text:match("## " .. name .. "\n(.-)\n## ") or text:match("## " .. name .. "\n(.*)$") or ""
end

return M
