-- std.text: small text helpers runbooks show operators: a line diff of two texts (what a
-- ClusterConfiguration or a manifest becomes, in --dry-run and in the log).
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

return M
