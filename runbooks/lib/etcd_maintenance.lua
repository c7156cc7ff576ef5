-- The pieces of etcd-maintenance.lua: the script a node's timer runs (its own member only: seed
-- 003, IR-3), its settings, the oneshot service and the timer, staggered so no two members
-- defragment at once (a defragmentation blocks the member while it runs).
local svc = require "std.etcd_service"
local systemd = require "std.systemd"

local M = {}

M.SCRIPT = "/usr/local/bin/etcd-maintenance"
M.ENV_FILE = "/etc/etcd/maintenance.env"
M.SERVICE = "etcd-defrag.service"
M.TIMER = "etcd-defrag.timer"

M.SCRIPT_TEXT = [[#!/bin/sh
# Written by engine (runbooks/etcd-maintenance.lua). Defragments this node's own etcd member, and
# no other (seed 003, IR-3), when its database is more than THRESHOLD percent free space and at least
# MIN_BYTES big; compacts first when COMPACT_KEEP is set (revisions kept). etcdctl reads
# ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT and ETCDCTL_KEY from /etc/etcd/maintenance.env.
set -eu
export ETCDCTL_API=3
status() { etcdctl endpoint status -w json; }
field() { printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -n 1 | cut -d: -f2; }
st=$(status)
if [ -n "${COMPACT_KEEP:-}" ]; then
  rev=$(field "$st" revision)
  if [ "$rev" -gt "$COMPACT_KEEP" ]; then
    # Compaction is cluster-wide: the first member's timer of the day does it, the next ones find it done.
    if out=$(etcdctl compact "$((rev - COMPACT_KEEP))" 2>&1); then
      echo "etcd-maintenance: compacted to revision $((rev - COMPACT_KEEP))"
    elif printf '%s' "$out" | grep -q "required revision has been compacted"; then
      echo "etcd-maintenance: already compacted to revision $((rev - COMPACT_KEEP)) or later (compaction is cluster-wide)"
    else
      printf '%s\n' "$out" >&2
      exit 1
    fi
    st=$(status)
  fi
fi
size=$(field "$st" dbSize)
inuse=$(field "$st" dbSizeInUse)
[ -n "$size" ] && [ "$size" -gt 0 ] || { echo "etcd-maintenance: no dbSize from $ETCDCTL_ENDPOINTS" >&2; exit 1; }
free=$(( (size - ${inuse:-$size}) * 100 / size ))
echo "etcd-maintenance: $ETCDCTL_ENDPOINTS database ${size} bytes, ${inuse:-?} in use, ${free}% free space"
if [ "$free" -ge "$THRESHOLD" ] && [ "$size" -ge "$MIN_BYTES" ]; then
  etcdctl defrag --command-timeout=5m
  echo "etcd-maintenance: defragmented $ETCDCTL_ENDPOINTS"
else
  echo "etcd-maintenance: below the threshold (${THRESHOLD}% free and ${MIN_BYTES} bytes); nothing to do"
fi
]]

--- local_endpoint(flags) → this member's own client URL: loopback when it listens there (kubeadm
--- does), else the URL it advertises. Never another member's.
function M.local_endpoint(flags)
  for url in (flags["listen-client-urls"] or ""):gmatch("[^,]+") do
    if url:match("^https?://127%.0%.0%.1:") then return url end
  end
  return ((flags["advertise-client-urls"] or ""):match("^[^,]+"))
end

--- env_text(flags, p) → the script's settings for one node.
function M.env_text(flags, p)
  local lines = {
    "# etcd-maintenance's settings, written by engine (runbooks/etcd-maintenance.lua).",
    "ETCDCTL_ENDPOINTS=" .. M.local_endpoint(flags),
    "ETCDCTL_CACERT=" .. (flags["trusted-ca-file"] or "/etc/kubernetes/pki/etcd/ca.crt"),
    "ETCDCTL_CERT=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
    "ETCDCTL_KEY=/etc/kubernetes/pki/etcd/healthcheck-client.key",
    "THRESHOLD=" .. p.threshold,
    "MIN_BYTES=" .. (p.min_db_mb * 1024 * 1024),
  }
  if p.compact then lines[#lines + 1] = "COMPACT_KEEP=" .. p.compact_keep end
  return table.concat(lines, "\n") .. "\n"
end

function M.service_text()
  return systemd.oneshot_text { description = "Defragment this node's etcd member when fragmented (engine etcd-maintenance)",
    after = svc.UNIT, env_file = M.ENV_FILE, exec = M.SCRIPT }
end

--- timer_text(at) → the timer, firing daily at "HH:MM:SS".
function M.timer_text(at)
  return systemd.timer_text { description = "Daily etcd defragmentation check of this node's member (engine etcd-maintenance)",
    on_calendar = "*-*-* " .. at, unit = M.SERVICE }
end

-- The timers' times and list-timers line: std.systemd's (shared with cert-renew's timer).
M.times = systemd.times
function M.timer_line(h) return systemd.timer_line(h, M.TIMER) end

return M
