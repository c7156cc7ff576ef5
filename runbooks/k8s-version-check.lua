-- Detection for a scheduled upgrade pipeline (seed 004's weekly k8s-version-check CronJob): what
-- runs (the API server and every kubelet), the newest patch of the running minor (apt-cache madison
-- on the leader), whether the next minor's package repository exists (its Release, then its
-- Packages for the newest patch), the Pushgateway gauges k8s_upgrade_available{kind,running,target}
-- and k8s_version_check_last_run_timestamp, and, when create_job allows it, the upgrade Job (one
-- per target: a second detection finds it and does nothing). Changes nothing else.
local facts = require "std.facts"
local http = require "engine.http"
local k8s = require "engine.k8s"
local pushgateway = require "engine.pushgateway"
local semver = require "std.semver"
local upgrade_job = require "upgrade_job"
local groups = require "std.groups"
local k8s_repo = require "std.k8s_repo"

return runbook {
  name = "k8s-version-check",
  summary = "Which kubeadm upgrade is available (a patch of the running minor, else the next minor): gauges, and the upgrade Job if allowed",
  params = {
    leader = { type = "string", default = "k8s-cp-leader", help = "inventory group whose first host's apt source is asked (an inventory without the group: the first control-plane host)" },
    control_plane = { type = "string", default = "k8s-cp", help = "its first host when the leader group is empty" },
    repo_url = { type = "string",
      help = "a minor's apt repository, {minor} filled in (default: the hosts' k8s_repo_url var, else " .. k8s_repo.DEFAULT .. ")" },
    minor = { type = "boolean", default = true, help = "propose the next minor when the running one has no newer patch" },
    pushgateway = { type = "string", help = "Pushgateway URL (default: the hosts' pushgateway_url var, else http://127.0.0.1:9091)" },
    pushgateway_job = { type = "string", default = "k8s_version_check", help = "job label of the gauges" },
    create_job = { type = "boolean", default = false, help = "create the upgrade Job for the target found (once per target)" },
    job_namespace = { type = "string", default = "engine", help = "the Job's namespace (deploy/)" },
    job_image = { type = "string", default = "engine:latest", help = "the Job's image (deploy/Containerfile)" },
    job_service_account = { type = "string", default = "engine", help = "the Job's service account (deploy/rbac.yaml)" },
    job_inventory = { type = "string", default = "engine-inventory", help = "ConfigMap holding inventory.yml" },
    job_ssh_secret = { type = "string", default = "engine-ssh", help = "Secret holding the SSH key (id_ed25519)" },
    job_snapshot_claim = { type = "string", default = "engine-etcd-snapshots",
      help = "PersistentVolumeClaim where the upgrade keeps its etcd snapshot (deploy/snapshots.yaml)" },
    job_params = { type = "list", default = {}, help = "more k8s-upgrade params for the Job, name=value (workers_at_once=10%)" },
  },
  ---@param p params.k8s_version_check
  ---@param inv engine.Inventory
  run = function(p, inv)
    local leader = groups.optional(inv, p.leader, "k8s-cp-leader")[1] or inv:hosts(p.control_plane)[1]
    if not leader then fail("no host in %s or %s to ask apt-cache madison kubeadm", p.leader, p.control_plane) end
    local vars = leader.vars or {}
    local repo = p.repo_url or vars.k8s_repo_url or k8s_repo.DEFAULT
    if not repo:find("{minor}", 1, true) then fail("repo_url %s has no {minor} to fill in", repo) end
    pushgateway.configure { url = p.pushgateway or vars.pushgateway_url or "http://127.0.0.1:9091" }

    -- 1. What runs: the API server, and every kubelet (a half-done rollout is not a new target).
    local sv, serr = k8s.server_version()
    if not sv then fail("the API server's version: %s", tostring(serr)) end
    local running = semver.format(sv.git_version)
    local nodes, nerr = k8s.nodes()
    if not nodes then fail("the nodes: %s", tostring(nerr)) end
    local skew = {}
    for _, n in ipairs(nodes) do
      local kv = semver.parse(n.kubelet_version or "")
      if not kv or semver.compare(kv, running) ~= 0 then skew[#skew + 1] = n.name .. " " .. tostring(n.kubelet_version) end
    end
    local rv = semver.parse(running)

    -- 2. The newest patch of the running minor, as the leader's apt source offers it.
    local patch
    for _, v in ipairs(facts.versions(leader, "kubeadm")) do
      local pv = semver.parse(v)
      if pv.minor == rv.minor and semver.compare(pv, rv) > 0 then patch = v break end
    end

    -- 3. The next minor: its repository's Release, then the newest kubeadm its Packages lists.
    local next_minor = string.format("%d.%d", rv.major, rv.minor + 1)
    local next_url = k8s_repo.url(repo, next_minor)
    local minor_target, minor_note
    local r, rerr, rmsg = http.request { url = next_url .. "/Release", method = "HEAD", timeout = 30 }
    if not r then
      minor_note = "could not ask: " .. tostring(rmsg or rerr)
    elseif r.status == 200 then
      local versions, why = k8s_repo.kubeadm_versions(next_url)
      minor_target = versions and versions[1]
      minor_note = minor_target and ("v" .. minor_target) or ("repository exists, no kubeadm read (" .. tostring(why) .. ")")
    else
      minor_note = "not published (" .. next_url .. "/Release answered " .. r.status .. ")"
    end

    -- 4. The decision: finish a half-done rollout first, then patches, then the next minor.
    local kind, target
    if #skew > 0 then
      kind = "skew"
    elseif patch then
      kind, target = "patch", patch
    elseif p.minor and minor_target then
      kind, target = "minor", minor_target
    else
      kind = "none"
    end
    print(string.format("running      v%s (API server)%s", running,
      #skew > 0 and ("; kubelets differing: " .. table.concat(skew, ", ")) or "; every kubelet the same"))
    print(string.format("patch        %s", patch and ("v" .. patch) or "none newer in v" .. rv.major .. "." .. rv.minor))
    print(string.format("next minor   v%s: %s", next_minor, minor_note))
    print(string.format("available    %s", target and (kind .. " upgrade to v" .. target) or
      kind == "skew" and "none: a rollout is half done (resume it: engine runs)" or "none"))

    -- 5. The gauges (a PUT: this run's values replace the last run's).
    step("gauges", function()
      pushgateway.push(p.pushgateway_job, {}, {
        { name = "k8s_upgrade_available", value = target and 1 or 0, help = "1 when an upgrade is available",
          labels = { kind = kind, running = running, target = target or running } },
        { name = "k8s_version_check_last_run_timestamp", value = os.time(), help = "when the check last ran" },
      }, { required = true })
    end)

    -- 6. The upgrade Job, once per target.
    if target and p.create_job then
      step("upgrade job", function() upgrade_job.ensure(p, target, kind) end)
    elseif target then
      print("create_job is off: start it with engine run runbooks/k8s-upgrade.lua -e version=" .. target .. " -e kind=" .. kind)
    end
  end,
}
