-- The renewal timer cert-renew.lua installs with timer=true (what kubespray's
-- auto_renew_certificates does): a script that renews the node's kubeadm certificates when one
-- has fewer than DAYS left, then restarts the control-plane static pods one at a time the way
-- kubeadm documents, a oneshot service running it, and a weekly timer, staggered across nodes so
-- no two API servers restart at once. kubespray's script removes every control-plane pod of the
-- node at once, on every node at the same minute.
local fleet = require "engine.fleet"
local http = require "engine.http"
local ops = require "std.ops"
local systemd = require "std.systemd"

local M = {}

M.SCRIPT = "/usr/local/bin/engine-cert-renew"
M.ENV_FILE = "/etc/kubernetes/engine-cert-renew.env"
M.SERVICE = "engine-cert-renew.service"
M.TIMER = "engine-cert-renew.timer"

M.SCRIPT_TEXT = [[#!/bin/sh
# Written by engine (runbooks/cert-renew.lua, timer=true). When one of this node's kubeadm
# certificates has fewer than DAYS days left: a dated backup of pki/ and the kubeconfigs under
# BACKUP_DIR, `kubeadm certs renew all`, then each control-plane static pod restarted as kubeadm
# documents (its manifest moved out of manifests/, the pod gone, the manifest back, a container
# running again), one at a time, each within TIMEOUT seconds; the API server's, until the node's
# /readyz answers and it serves the renewed pki/apiserver.crt (a container running proves neither:
# seed 001). Settings: /etc/kubernetes/engine-cert-renew.env.
set -eu
K=/etc/kubernetes
left=$((DAYS * 86400))
due=""
for c in pki/apiserver.crt pki/apiserver-kubelet-client.crt pki/apiserver-etcd-client.crt pki/front-proxy-client.crt \
         pki/etcd/server.crt pki/etcd/peer.crt pki/etcd/healthcheck-client.crt; do
  [ -f "$K/$c" ] || continue
  openssl x509 -checkend "$left" -noout -in "$K/$c" >/dev/null || due="$due $c"
done
for f in admin.conf super-admin.conf controller-manager.conf scheduler.conf; do
  [ -f "$K/$f" ] || continue
  sed -n 's/^ *client-certificate-data: *//p' "$K/$f" | base64 -d | openssl x509 -checkend "$left" -noout >/dev/null || due="$due $f"
done
if [ -z "$due" ]; then
  echo "engine-cert-renew: every certificate has $DAYS days or more left; nothing to do"
  exit 0
fi
echo "engine-cert-renew: under $DAYS days:$due"
umask 077
b="$BACKUP_DIR/certs-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$b" "$BACKUP_DIR/parked"
cp -a "$K/pki" "$b/"
for f in "$K"/*.conf; do [ -f "$f" ] && cp -a "$f" "$b/"; done
echo "engine-cert-renew: backup in $b"
kubeadm certs renew all
running() { [ -n "$(crictl ps --state running --name "^$1\$" -q)" ]; }
wait_for() {
  i=0
  while [ "$i" -lt "$TIMEOUT" ]; do
    if [ "$1" = up ]; then running "$2" && return 0; else running "$2" || return 0; fi
    sleep 1
    i=$((i + 1))
  done
  echo "engine-cert-renew: $2 not $1 within ${TIMEOUT}s" >&2
  return 1
}
# The API server's own address (its manifest's --advertise-address), where it serves this node.
api=$(sed -n 's/.*--advertise-address=\([0-9A-Fa-f.:]*\).*/\1/p' "$K/manifests/kube-apiserver.yaml" "$BACKUP_DIR/parked/kube-apiserver.yaml" 2>/dev/null | head -n 1)
case "$api" in "") api=127.0.0.1 ;; *:*) api="[$api]" ;; esac
serial() { openssl x509 -noout -serial 2>/dev/null | sed 's/^serial=//'; }
serves_renewed() {
  [ "$(curl -sf --max-time 2 --cacert "$K/pki/ca.crt" "https://$api:6443/readyz" 2>/dev/null)" = ok ] || return 1
  served=$(openssl s_client -connect "$api:6443" </dev/null 2>/dev/null | serial)
  [ "$served" = "$(serial <"$K/pki/apiserver.crt")" ]
}
api_ready() {
  end=$(($(date +%s) + TIMEOUT))
  while [ "$(date +%s)" -lt "$end" ]; do
    serves_renewed && return 0
    sleep 1
  done
  echo "engine-cert-renew: kube-apiserver runs, but https://$api:6443 did not answer /readyz with the renewed" \
    "certificate within ${TIMEOUT}s (serves serial ${served:-none}, $K/pki/apiserver.crt holds $(serial <"$K/pki/apiserver.crt"));" \
    "the controller-manager and scheduler were not restarted" >&2
  return 1
}
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  m="$K/manifests/$c.yaml"
  p="$BACKUP_DIR/parked/$c.yaml"
  if [ -f "$m" ]; then mv "$m" "$p"; elif [ ! -f "$p" ]; then continue; fi
  gone=0
  wait_for down "$c" || gone=1
  mv "$p" "$m"
  [ "$gone" = 0 ] || exit 1
  wait_for up "$c"
  if [ "$c" = kube-apiserver ]; then api_ready || exit 1; fi
  echo "engine-cert-renew: restarted $c"
done
echo "engine-cert-renew: renewed and restarted"
]]

--- env_text(p) → the script's settings.
function M.env_text(p)
  return table.concat({
    "# engine-cert-renew's settings, written by engine (runbooks/cert-renew.lua).",
    "DAYS=" .. p.timer_days,
    "TIMEOUT=" .. math.floor(p.restart_timeout),
    "BACKUP_DIR=" .. p.backup_dir,
    "",
  }, "\n")
end

function M.service_text()
  return systemd.oneshot_text { description = "Renew this node's kubeadm certificates when due, restart the control plane (engine cert-renew)",
    env_file = M.ENV_FILE, exec = M.SCRIPT }
end

--- timer_text(weekday, at) → weekly at "HH:MM:SS" on weekday ("Mon").
function M.timer_text(weekday, at)
  return systemd.timer_text { description = "Weekly kubeadm certificate renewal check (engine cert-renew)",
    on_calendar = weekday .. " *-*-* " .. at, unit = M.SERVICE }
end

--- install(p, hosts): on each node the script, its settings, the service and the timer (weekly on
--- p.timer_weekday, the nodes p.timer_stagger apart from p.timer_at), enabled and started; each an
--- operation (idempotent, exact under --dry-run). Raises naming a node whose timer is not listed.
function M.install(p, hosts)
  local at = systemd.times(p.timer_at, p.timer_stagger, #hosts)
  local bad = {}
  fleet.each(hosts, { at_once = 1 }, function(h)
    local i
    for n, x in ipairs(hosts) do if x.name == h.name then i = n end end
    ops.step(h, systemd.file(M.SCRIPT, M.SCRIPT_TEXT, { mode = "0755", name = "script " .. M.SCRIPT }))
    ops.step(h, systemd.file(M.ENV_FILE, M.env_text(p), { mode = "0644", name = "settings " .. M.ENV_FILE }))
    ops.step(h, systemd.unit(M.SERVICE, M.service_text()))
    ops.step(h, systemd.unit(M.TIMER, M.timer_text(p.timer_weekday, at[i])))
    ops.step(h, systemd.enabled(M.TIMER))
    ops.step(h, systemd.started(M.TIMER))
    if not http.dry_run() then
      local line = M.timer_line(h)
      if not line then bad[#bad + 1] = h.name .. ": " .. M.TIMER .. " is not listed by systemctl list-timers" end
      log.info("renewal timer", { node = h.name, timer = line })
    end
  end)
  if #bad > 0 then fail("%s", table.concat(bad, "\n")) end
end

function M.timer_line(h) return systemd.timer_line(h, M.TIMER) end

return M
