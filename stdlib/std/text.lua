-- std.text: small text helpers runbooks show operators: a line diff of two texts (what a
-- ClusterConfiguration or a manifest becomes, in --dry-run and in the log), and tables whose
-- columns fit what is in them (node names run past any fixed width: ip-10-0-1-23.ec2.internal).
local M = {}

local function lines(s)
  local out = {}
  for line in ((s or "") .. (s and s:sub(-1) ~= "\n" and "\n" or "")):gmatch("(.-)\n") do out[#out + 1] = line end
  return out
end

--- diff(old, new) → list of "- line" / "+ line" (a longest-common-subsequence diff; unchanged
--- lines left out), empty when the texts hold the same lines.
function M.diff(old, new)
  local a, b = lines(old), lines(new)
  local n, m = #a, #b
  local L = {}
  for i = n + 1, 1, -1 do
    L[i] = {}
    for j = m + 1, 1, -1 do
      if i > n or j > m then L[i][j] = 0
      elseif a[i] == b[j] then L[i][j] = L[i + 1][j + 1] + 1
      else L[i][j] = math.max(L[i + 1][j], L[i][j + 1]) end
    end
  end
  local out, i, j = {}, 1, 1
  while i <= n or j <= m do
    if i <= n and j <= m and a[i] == b[j] then i, j = i + 1, j + 1
    elseif j <= m and (i > n or L[i][j + 1] >= L[i + 1][j]) then out[#out + 1] = "+ " .. b[j]; j = j + 1
    else out[#out + 1] = "- " .. a[i]; i = i + 1 end
  end
  return out
end

--- columns(rows, opts) → the rows as one text: each column as wide as its widest cell, two spaces
--- between columns, the last column not padded. rows[1] (the header) sets how many columns there
--- are; a cell that is nil prints as "-", anything else through tostring. opts.right = { [i] =
--- true } right-aligns column i (numbers).
function M.columns(rows, opts)
  local right = opts and opts.right or {}
  local n = rows[1] and #rows[1] or 0
  local width, cells = {}, {}
  for r, row in ipairs(rows) do
    cells[r] = {}
    for i = 1, n do
      local c = row[i] == nil and "-" or tostring(row[i])
      cells[r][i] = c
      width[i] = math.max(width[i] or 0, utf8.len(c) or #c)
    end
  end
  local out = {}
  for r, row in ipairs(cells) do
    local parts = {}
    for i, c in ipairs(row) do
      local pad = string.rep(" ", width[i] - (utf8.len(c) or #c))
      parts[i] = right[i] and (pad .. c) or (i < n and (c .. pad) or c)
    end
    out[r] = (table.concat(parts, "  "):gsub(" +$", ""))  -- an empty last cell leaves no trailing spaces
  end
  return table.concat(out, "\n")
end

return M
