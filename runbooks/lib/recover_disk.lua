-- The pieces of runbooks/recover-disk.lua (seed 002): the disk's facts, the cleanups in the seed's
-- order (safest first), bringing the node's control plane back, and the prevention it installs.
local http = require "engine.http"
local k8s = require "engine.k8s"
local kubeadm = require "std.kubeadm"
local nodes = require "etcd_nodes"
local remote = require "std.remote"
local ssh = require "engine.ssh"
local static_pod = require "std.static_pod"
local systemd = require "std.systemd"
local text = require "std.text"
local time = require "engine.time"

local M = {}

--- usage(host) → {used = percent, avail = bytes, size = bytes} of / (df -P, 1K blocks).
function M.usage(h)
  local r = remote.must(h, "df -P /", { read_only = true, what = "df -P /" })
  local size, used, avail, pct = r.stdout:match("\n%S+%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)%%")
  if not pct then error(h.name .. ": no figures in df -P /: " .. r.stdout, 0) end
  return { used = tonumber(pct), avail = tonumber(avail) * 1024, size = tonumber(size) * 1024, used_bytes = tonumber(used) * 1024 }
end

local function mib(bytes) return string.format("%d MiB", (bytes or 0) // (1024 * 1024)) end

--- triage(host) → {usage, journal, apt, snapd, top}: what each cleanup could free (estimates) and
--- the biggest directories under /var.
function M.triage(h)
  local r = remote.must(h, "echo '## journal'; journalctl --disk-usage 2>/dev/null; echo '## du'; " ..
    "du -s /var/cache/apt /var/lib/snapd 2>/dev/null; echo '## top'; du -x -d 1 /var 2>/dev/null | sort -rn | head -n 6; echo '## end'",
    { read_only = true, what = "journalctl --disk-usage and du" })
  local out = { usage = M.usage(h), top = {} }
  local j, unit = r.stdout:match("take up ([%d%.]+)([KMGT]?)")
  local mult = { [""] = 1, K = 1024, M = 1024 ^ 2, G = 1024 ^ 3, T = 1024 ^ 4 }
  out.journal = j and math.floor(tonumber(j) * mult[unit]) or 0
  local du = r.stdout:match("## du\n(.-)## top") or ""
  out.apt = tonumber(du:match("(%d+)%s+/var/cache/apt") or 0) * 1024
  out.snapd = tonumber(du:match("(%d+)%s+/var/lib/snapd") or 0) * 1024
  for size, dir in (r.stdout:match("## top\n(.-)## end") or ""):gmatch("(%d+)%s+(%S+)") do
    if dir ~= "/var" then out.top[#out.top + 1] = dir .. " " .. mib(tonumber(size) * 1024) end
  end
  return out
end

--- deeper(host) → the biggest directories two levels under /var ("/var/lib/docker 51200 MiB"):
--- where seed 002's forensics went next by hand (du -sh /var/lib/*), for a disk no cleanup freed.
function M.deeper(h)
  local r = remote.must(h, "du -x -d 2 /var 2>/dev/null | sort -rn | head -n 24",
    { read_only = true, what = "du -x -d 2 /var" })
  local out = {}
  for size, dir in r.stdout:gmatch("(%d+)%s+(%S+)") do
    if select(2, dir:gsub("/", "")) == 3 and tonumber(size) >= 1024 and #out < 5 then out[#out + 1] = dir .. " " .. mib(tonumber(size) * 1024) end
  end
  if #out == 0 then out[1] = "nothing of 1 MiB or more" end
  return out
end

--- CLEANUPS: in seed 002's order, safest first. Never /var/lib/etcd, never /etc/kubernetes.
M.CLEANUPS = {
  { name = "journal", what = "journalctl --vacuum-time", estimate = "journal",
    cmd = function(p) return "journalctl --vacuum-time=" .. remote.quote(p.journal_vacuum_time) end },
  { name = "apt cache", what = "apt-get clean", estimate = "apt", cmd = function() return "apt-get clean" end },
  { name = "unused images", what = "crictl rmi --prune", cmd = function() return "crictl rmi --prune" end },
  { name = "disabled snaps", what = "snap remove (disabled revisions)", estimate = "snapd",
    cmd = function()
      return "if command -v snap >/dev/null 2>&1; then snap list --all | awk '$NF ~ /disabled/ {print $1, $3}' | " ..
        "while read -r name rev; do snap remove \"$name\" --revision=\"$rev\"; done; fi"
    end },
  { name = "rotated logs", what = "rotated files under /var/log",
    cmd = function()
      return "find /var/log -xdev -type f \\( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \\) -delete"
    end },
}

--- plan_text(triage by node, p)
function M.plan_text(found, hosts, p)
  local lines = { { "NODE", "USED", "FREE", "JOURNAL", "APT CACHE", "SNAPD", "BIGGEST UNDER /var" } }
  for _, h in ipairs(hosts) do
    local t = found[h.name]
    lines[#lines + 1] = { h.name, t.usage.used .. "%", mib(t.usage.avail), mib(t.journal), mib(t.apt), mib(t.snapd),
      table.concat(t.top, ", ") .. (t.usage.used > p.target_used and "" or "   (under the target)") }
  end
  return text.columns(lines, { right = { [2] = true, [3] = true } })
end

--- clean(host, p) → rows {cleanup, before, after}: each cleanup a journaled step, stopping as soon as
--- / is at or under the target; raises (naming what fills the disk) when every one has run and it
--- is still over, changing nothing else.
function M.clean(h, p)
  local rows = {}
  for _, c in ipairs(M.CLEANUPS) do
    local before = M.usage(h)
    if before.used <= p.target_used then break end
    local after = step("cleanup: " .. c.name, function()
      remote.must(h, c.cmd(p), { what = c.what, timeout = 600 })
      if http.dry_run() then return before end
      return M.usage(h)
    end)
    rows[#rows + 1] = { cleanup = c.name, before = before.used, after = after.used, freed = after.avail - before.avail }
    -- (a dry run freed nothing: its plan has the command, not figures that would mislead)
    if not http.dry_run() then log.info("cleanup", { node = h.name, cleanup = c.name, used_before = before.used .. "%", used_after = after.used .. "%",
      freed = mib(after.avail - before.avail) }) end
  end
  local now = M.usage(h)
  if now.used > p.target_used and not http.dry_run() then
    local t = M.triage(h)
    error(string.format("/ is still %d%% used after every cleanup (target %d%%): biggest under /var: %s; within them: %s. " ..
      "Nothing else was touched (never /var/lib/etcd or /etc/kubernetes): free space by hand or grow the disk",
      now.used, p.target_used, table.concat(t.top, ", "), table.concat(M.deeper(h), ", ")), 0)
  end
  return rows
end

-- A bounded wait, polling every second.
local function wait_until(timeout, fn)
  local deadline, why = time.monotonic() + timeout, nil
  while true do
    local ok, w = fn()
    if ok then return true end
    why = w
    if time.monotonic() > deadline then return nil, why end
    sleep(1)
  end
end

--- revive(host, p, is_cp) → since: the kubelet restarted (its pods were failing for want of
--- space); on a control-plane node its API server and etcd running again, /readyz through an SSH
--- tunnel to the node (the controller may not reach :6443, seed 002), the etcd member healthy.
--- etcd as kubeadm's static Pod is waited for as a container; under systemd (etcd-to-systemd) the
--- unit restarts it by itself and only its member is asked; with none on the node, nothing.
--- since: when the kubelet restarted (for node_ready).
function M.revive(h, p, is_cp)
  if http.dry_run() then log.info("dry-run: would restart the kubelet and wait for the node", { node = h.name }) return end
  local since = kubeadm.restart_kubelet(h)
  if is_cp then
    local etcd_where = nodes.where(h)
    local pods = etcd_where == "static" and { "etcd", "kube-apiserver" } or { "kube-apiserver" }
    for _, comp in ipairs(pods) do
      local ok, why = wait_until(p.ready_timeout, function()
        return static_pod.container(h, comp) ~= nil, comp .. " has no running container"
      end)
      if not ok then error(string.format("after the kubelet restart: %s (crictl ps)", why), 0) end
    end
    local addr = h.vars.ansible_host or h.name
    local t, terr, tmsg = ssh.tunnel(h, addr, tonumber(h.vars.k8s_apiserver_port) or 6443)
    if not t then error("a tunnel to the node's API server: " .. tostring(tmsg or terr), 0) end
    -- Readiness only: no credentials are sent, and the answer is a status (the certificate's
    -- name is the node's, not the tunnel's 127.0.0.1).
    local ok, why = wait_until(p.ready_timeout, function()
      local r, err, msg = http.request { url = "https://127.0.0.1:" .. t.port .. "/readyz", insecure = true, timeout = 5 }
      if not r then return false, "/readyz: " .. tostring(msg or err) end
      return r.status == 200, "/readyz answered " .. r.status
    end)
    t:close()
    if not ok then error("the node's API server after the kubelet restart: " .. tostring(why), 0) end
    if nodes.runs(etcd_where) then
      local eok, ewhy = nodes.gate(function() return nodes.member_ok(h, p) end, 2, 1, p.ready_timeout)
      if not eok then error("the node's etcd member after the kubelet restart: " .. tostring(ewhy), 0) end
    end
  end
  return since
end

--- node_ready(host, p, since, api_ok): the Node Ready with a heartbeat after since, when the API
--- answers (by the kubeconfig or a route through a node); said either way.
function M.node_ready(h, p, since, api_ok)
  if http.dry_run() then return end
  if since and api_ok then
    kubeadm.mark_restarts()  -- restarts made while no API server answered
    local n, err, msg = k8s.wait_node(h, { ready = true, heartbeat_after = since, timeout = p.ready_timeout })
    if not n then error("the Node after the kubelet restart: " .. tostring(msg or err), 0) end
  end
  log.info(api_ok and "the node is back" or "the node is back (its Node's Ready not checked: no route to the API)", { node = h.name })
end

-- Prevention -----------------------------------------------------------------------------------
M.JOURNALD = "/etc/systemd/journald.conf.d/engine-disk.conf"
M.SCRIPT = "/usr/local/bin/engine-disk-cleanup"
M.SERVICE = "engine-disk-cleanup.service"
M.TIMER = "engine-disk-cleanup.timer"

function M.journald_text(p)
  return "# Written by engine (runbooks/recover-disk.lua): the journal may not fill the disk (seed 002).\n" ..
    "[Journal]\nSystemMaxUse=" .. p.journal_max_use .. "\n"
end

M.SCRIPT_TEXT = [[#!/bin/sh
# Written by engine (runbooks/recover-disk.lua): weekly, what filled seed 002's disk: the journal
# beyond VACUUM_TIME and container images no container uses. Never /var/lib/etcd or /etc/kubernetes.
set -u
journalctl --vacuum-time="${VACUUM_TIME:-7d}"
crictl rmi --prune
df -h /
]]

--- journald(p) → operation: the drop-in holds SystemMaxUse, journald restarted after a change.
function M.journald(p)
  local text = M.journald_text(p)
  local file = systemd.file(M.JOURNALD, text, { mode = "0644", name = "journald drop-in" })
  return {
    name = "journald SystemMaxUse=" .. p.journal_max_use,
    holds = file.holds,
    apply = function(h)
      remote.must(h, "mkdir -p -m 0755 /etc/systemd/journald.conf.d", { what = "mkdir /etc/systemd/journald.conf.d" })
      file.apply(h)
      remote.must(h, "systemctl restart systemd-journald", { what = "restarting systemd-journald" })
    end,
  }
end

function M.service_text(p)
  return systemd.oneshot_text { description = "Weekly journal vacuum and image prune (engine recover-disk)",
    environment = { "VACUUM_TIME=" .. p.cleanup_vacuum_time }, exec = M.SCRIPT }
end

function M.timer_text(p, at)
  return systemd.timer_text { description = "Weekly disk cleanup (engine recover-disk)",
    on_calendar = p.cleanup_weekday .. " *-*-* " .. at, unit = M.SERVICE }
end

M.ALERT_RULE = [[
groups:
  - name: engine-disk
    rules:
      - alert: NodeRootFilesystemFilling
        expr: node_filesystem_avail_bytes{mountpoint="/",fstype!~"tmpfs|overlay"} / node_filesystem_size_bytes{mountpoint="/",fstype!~"tmpfs|overlay"} < 0.15
        for: 10m
        labels: {severity: warning}
        annotations:
          summary: "{{ $labels.instance }}: / has less than 15% free (runbooks/recover-disk.lua)"
      - alert: NodeRootFilesystemFull
        expr: node_filesystem_avail_bytes{mountpoint="/",fstype!~"tmpfs|overlay"} / node_filesystem_size_bytes{mountpoint="/",fstype!~"tmpfs|overlay"} < 0.05
        for: 5m
        labels: {severity: critical}
        annotations:
          summary: "{{ $labels.instance }}: / has less than 5% free: static pods will fail to start"
]]

return M
