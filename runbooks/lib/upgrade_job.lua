-- The upgrade Job k8s-version-check.lua creates when it finds a target (seed 004's detection
-- seeding its chain, here one Job): named for the target, so a second detection finds it and
-- creates nothing. What it runs is k8s-upgrade.lua with the inventory and SSH key the deploy/
-- manifests provide, its records in the cluster (--state-dir k8s://NAMESPACE) under the Job's name.
local check = require "engine.check"
local k8s = require "engine.k8s"

local M = {}

--- name(target) → "k8s-upgrade-v1-34-3": one Job per target version.
function M.name(target)
  return "k8s-upgrade-v" .. target:gsub("%.", "-")
end

-- The k8s-upgrade params the Job gives (each one an -e).
local function upgrade_params(p, target, kind)
  local out = { "version=" .. target, "kind=" .. kind,
    -- A maintenance window in job_params: the pod waits for it (a pod that stopped is not resumed in the next).
    "window_wait=true",
    -- The claim keeps the snapshots (deploy/snapshots.yaml): the three newest, so it never fills.
    "snapshot_keep=3" }
  for _, extra in ipairs(p.job_params) do out[#out + 1] = extra end
  return out
end

--- job(p, target, kind) → the Job object.
function M.job(p, target, kind)
  -- The run's records in the cluster, under the Job's own name: the Job's next pod (this one was
  -- evicted, by its own drain perhaps) runs the same command and goes on where it stopped.
  local args = { "run", "/usr/share/engine/runbooks/k8s-upgrade.lua", "-i", "/etc/engine/inventory/inventory.yml",
    "--state-dir", "k8s://" .. p.job_namespace, "--run-id", M.name(target) }
  for _, extra in ipairs(upgrade_params(p, target, kind)) do
    args[#args + 1] = "-e"
    args[#args + 1] = extra
  end
  local labels = { ["app.kubernetes.io/name"] = "engine", ["app.kubernetes.io/component"] = "k8s-upgrade",
    ["engine.dev/target"] = target }
  return {
    apiVersion = "batch/v1", kind = "Job",
    metadata = { name = M.name(target), namespace = p.job_namespace, labels = labels },
    spec = {
      backoffLimit = 6,
      ttlSecondsAfterFinished = 7 * 24 * 3600,
      -- The next pod only once the last one has ended (two engines on one run: the second is refused).
      podReplacementPolicy = "Failed",
      podFailurePolicy = { rules = {
        -- An eviction (the run's own drain of the node its pod is on) is no failure: the next pod resumes.
        { action = "Ignore", onPodConditions = { { type = "DisruptionTarget", status = "True" } } },
        -- The run failed (1) or its params or inventory are wrong (2): for a person, not a retry.
        { action = "FailJob", onExitCodes = { containerName = "engine", operator = "In", values = { 1, 2 } } },
      } },
      template = {
        metadata = { labels = labels },
        spec = {
          serviceAccountName = p.job_service_account,
          restartPolicy = "Never",
          -- Not root, no privilege (docs/in-cluster.md): the image's user; fsGroup makes the
          -- Secret's 0400 key readable to it; the root file system read-only, HOME an emptyDir,
          -- the etcd snapshot's directory (snapshot_dir's default) a claim: it outlives the pod.
          securityContext = { runAsNonRoot = true, runAsUser = 65532, runAsGroup = 65532, fsGroup = 65532,
            seccompProfile = { type = "RuntimeDefault" } },
          containers = { {
            name = "engine", image = p.job_image, args = args,
            securityContext = { allowPrivilegeEscalation = false, readOnlyRootFilesystem = true,
              capabilities = { drop = { "ALL" } } },
            env = {
              { name = "POD_NAME", valueFrom = { fieldRef = { fieldPath = "metadata.name" } } },
              { name = "NODE_NAME", valueFrom = { fieldRef = { fieldPath = "spec.nodeName" } } },
            },
            volumeMounts = {
              { name = "inventory", mountPath = "/etc/engine/inventory", readOnly = true },
              { name = "ssh", mountPath = "/etc/engine/ssh", readOnly = true },
              { name = "home", mountPath = "/var/lib/engine" },
              { name = "snapshots", mountPath = "/var/backups/engine" },
            },
          } },
          volumes = {
            { name = "inventory", configMap = { name = p.job_inventory } },
            { name = "ssh", secret = { secretName = p.job_ssh_secret, defaultMode = 256 } },  -- 0400
            { name = "home", emptyDir = {} },
            { name = "snapshots", persistentVolumeClaim = { claimName = p.job_snapshot_claim } },
          },
        },
      },
    },
  }
end

--- ensure(p, target, kind): the Job exists (created now, or found from an earlier detection).
function M.ensure(p, target, kind)
  local name = M.name(target)
  local have, gerr, gmsg = k8s.get("jobs.batch", name, { namespace = p.job_namespace })
  if have then
    log.info("the upgrade Job for this target exists already: nothing to do", { job = p.job_namespace .. "/" .. name })
    return
  end
  if gerr ~= "not found" then error(string.format("reading Job %s/%s: %s", p.job_namespace, name, tostring(gmsg or gerr)), 0) end
  -- Its params checked here, against the k8s-upgrade.lua shipped beside this runbook (the image's
  -- own): a value it refuses would fail the Job's pod at once (exit 2, no retry), seen only by
  -- whoever looks at the Job.
  local _, perr = check.params("k8s-upgrade.lua", upgrade_params(p, target, kind))
  if perr then
    error(string.format("job_params: k8s-upgrade.lua would refuse the Job's params: %s; no Job created", perr), 0)
  end
  -- A Job whose claim is missing would wait in Pending for ever, found only when someone looks.
  local claim, cerr, cmsg = k8s.get("persistentvolumeclaims", p.job_snapshot_claim, { namespace = p.job_namespace })
  if not claim then
    if cerr == "not found" then
      error(string.format("the upgrade Job keeps its etcd snapshot on the PersistentVolumeClaim %s/%s, which does not "
        .. "exist: kubectl apply -f deploy/snapshots.yaml (or name another with -e job_snapshot_claim=NAME); no Job created",
        p.job_namespace, p.job_snapshot_claim), 0)
    end
    error(string.format("reading PersistentVolumeClaim %s/%s: %s", p.job_namespace, p.job_snapshot_claim, tostring(cmsg or cerr)), 0)
  end
  local made, err, msg = k8s.create(M.job(p, target, kind), { namespace = p.job_namespace })
  if not made and err == "conflict" then
    log.info("the upgrade Job for this target was created meanwhile: nothing to do", { job = p.job_namespace .. "/" .. name })
    return
  end
  if not made then error(string.format("creating Job %s/%s: %s", p.job_namespace, name, tostring(msg or err)), 0) end
  log.info("created the upgrade Job", { job = p.job_namespace .. "/" .. name, target = target, kind = kind })
end

return M
