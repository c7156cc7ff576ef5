-- Recovery for seed 000: a stale kube-apiserver.yaml.bak left in /etc/kubernetes/manifests made the
-- kubelet keep running the old image after an upgrade rewrote the real manifest. This finds every
-- file there that is not one of kubeadm's manifests (and every pod name defined twice), moves them
-- to a backup directory outside the manifests directory, restarts the kubelet and checks that each
-- static pod runs the image its manifest names. The reverse too: a kubeadm manifest gone from the
-- directory (moved out by hand to stop a pod) is written again by kubeadm's own phases.
local fleet = require "engine.fleet"
local http = require "engine.http"
local k8s = require "engine.k8s"
local facts = require "std.facts"
local kubeadm = require "std.kubeadm"
local ops = require "std.ops"
local restore = require "manifest_restore"

return runbook {
  name = "recover-static-pods",
  summary = "Move stray or duplicate static Pod manifests out of /etc/kubernetes/manifests, write back kubeadm's missing ones",
  params = {
    control_plane = { type = "string", default = "k8s-cp", help = "inventory group (or pattern) of the control-plane nodes" },
    backup_dir = { type = "string", default = "/etc/kubernetes/manifests.backups", pattern = "^/",
      help = "where strays go (a directory the kubelet does not read)" },
    timeout = { type = "duration", default = "5m", help = "for the static pods to run their manifests' images (and an etcd written back to be healthy)" },
    restore = { type = "boolean", default = true,
      help = "write a kubeadm manifest gone from the directory again (kubeadm init phase ...) from kube-system/kubeadm-config" },
    kubeadm_config = { type = "string", default = "/etc/kubernetes/kubeadm-config.yaml", pattern = "^/",
      help = "a kubeadm configuration file on the node (the one kubeadm init used; kubespray keeps it here), read for its " ..
        "ClusterConfiguration only when kube-system/kubeadm-config cannot be: the API down because its own manifest is the one gone" },
  },
  ---@param p params.recover_static_pods
  ---@param inv engine.Inventory
  run = function(p, inv)
    if p.backup_dir:gsub("/+$", "") == kubeadm.MANIFESTS or p.backup_dir:find(kubeadm.MANIFESTS .. "/", 1, true) == 1 then
      fail("backup_dir %s is inside %s: the kubelet would read the strays there too", p.backup_dir, kubeadm.MANIFESTS)
    end
    local hosts = inv:hosts(p.control_plane)
    if #hosts == 0 then fail("no hosts match %s", p.control_plane) end
    hosts.hidden = inv:hidden(p.control_plane)  -- an etcd member's peers --limit hides are not counted
    -- A node whose etcd.yaml is gone goes first: every other node's static pods are read through an
    -- API that needs that member back. With none gone and the API failing every read for etcd,
    -- nothing this runbook writes brings it back: said at once, not after `timeout` on the first node.
    local missing = step("find missing", function()
      local out = {}
      fleet.each(hosts, { at_once = #hosts }, function(h)
        local gone, note = restore.missing(h, p.kubeadm_config)
        out[h.name] = { gone = gone, note = note }
      end)
      return out
    end)
    local first, ordered = {}, {}  -- the nodes whose etcd.yaml is gone
    for _, h in ipairs(hosts) do first[h.name] = ((missing[h.name] or {}).gone or {})[1] == "etcd" end
    for _, h in ipairs(hosts) do if first[h.name] then ordered[#ordered + 1] = h end end
    if #ordered == 0 then
      local _, err, msg = k8s.list("pods", { namespace = "kube-system", limit = 1 })
      if tostring(msg):find("etcdserver: request timed out", 1, true) then
        fail("the API servers answer, but etcd gives them nothing (%s), and no control-plane node's etcd.yaml is gone: " ..
          "etcd has lost its quorum some other way. runbooks/doctor.lua says how (etcd-quorum-lost: members down, or their " ..
          "data lost: runbooks/etcd-restore.lua)", tostring(msg or err))
      end
    end
    for _, h in ipairs(hosts) do if not first[h.name] then ordered[#ordered + 1] = h end end
    fleet.each(ordered, { at_once = 1 }, function(h)
      local strays = step("find strays", function()
        local out = facts.strays(h)
        for _, x in ipairs(facts.manifest_problems(h)) do log.warn(x) end
        return out
      end)
      if #strays > 0 then
        ops.step(h, ops.define {
          name = "move strays",
          holds = function(host)
            local left = facts.strays(host)
            return #left == 0, "still in " .. kubeadm.MANIFESTS .. ": " .. table.concat(left, ", ")
          end,
          apply = function(host)
            local dir = p.backup_dir .. "/" .. os.date("!%Y%m%dT%H%M%SZ")
            local files = {}
            for _, f in ipairs(strays) do files[#files + 1] = kubeadm.quote(kubeadm.MANIFESTS .. "/" .. f) end
            kubeadm.run(host, "mkdir -p " .. kubeadm.quote(dir) .. " && mv -n " .. table.concat(files, " ") .. " " ..
              kubeadm.quote(dir) .. "/", { what = "moving " .. table.concat(strays, ", ") .. " to " .. dir })
            if not http.dry_run() then log.info("moved out of the manifests directory", { files = table.concat(strays, ", "), to = dir }) end
          end,
        })
        -- No fact tells whether the kubelet re-read the directory since: restarted again on resume.
        ops.step(h, ops.define {
          name = "restart kubelet",
          apply = function(host) kubeadm.restart_kubelet_ready(host, { timeout = p.timeout }) end,
        })
      else
        log.info("no stray manifests", { dir = kubeadm.MANIFESTS })
      end
      local gone, note = (missing[h.name] or {}).gone or {}, (missing[h.name] or {}).note
      if note then log.warn(note) end
      if #gone > 0 then log.warn("kubeadm manifests gone", { components = table.concat(gone, ", ") }) end
      if #gone > 0 and not p.restore then
        fail("%s: %s gone from %s (-e restore=true writes them again)", h.name, table.concat(gone, ", "), kubeadm.MANIFESTS)
      elseif #gone > 0 then
        ops.step(h, restore.operation(gone, hosts, p.timeout, p.kubeadm_config))
      end
      ops.step(h, kubeadm.static_pods_at(nil, { timeout = p.timeout }))
    end)
  end,
}
