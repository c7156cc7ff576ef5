-- engine.etcd: what etcdctl does, over etcd's v3 JSON gateway with TLS client certificates:
-- status, members, health, snapshots (verified), defragmentation, alarms, compaction, and keys for
-- runbook markers. IDs stay strings: member and cluster IDs exceed 2^63.
local check = require "engine.check"
local http = require "engine.http"
local inventory = require "engine.inventory"
local native = require "engine.etcd.native"
local time = require "engine.time"

local M = {}

-- kubeadm's layout: the healthcheck client is the certificate etcdctl uses on a control-plane node.
local settings = {
  endpoints = {},
  ca_file = "/etc/kubernetes/pki/etcd/ca.crt",
  cert_file = "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
  key_file = "/etc/kubernetes/pki/etcd/healthcheck-client.key",
}

--- configure{endpoints = {"https://10.0.0.1:2379", ...}, ca_file, cert_file, key_file, ca_data,
--- cert_data, key_data (PEM held in memory), timeout, idle_timeout (a snapshot stream that sends
--- nothing for this many seconds fails as "timeout"; default 60)}
function M.configure(opts)
  check.options(opts, { "endpoints", "ca_file", "cert_file", "key_file", "ca_data", "cert_data", "key_data", "timeout",
    "idle_timeout" }, "etcd.configure")
  for k, v in pairs(opts) do settings[k] = v end
  settings.timeout = check.seconds(opts.timeout, "etcd.configure", "timeout") or settings.timeout
  settings.idle_timeout = check.seconds(opts.idle_timeout, "etcd.configure", "idle_timeout") or settings.idle_timeout
  if opts.ca_data then settings.ca_file = nil end
  if opts.cert_data then settings.cert_file = nil end
  if opts.key_data then settings.key_file = nil end
end

--- from_inventory(hosts, {port = 2379, scheme = "https"}) → endpoints
--- An endpoint per host (its etcd_access_address, else ansible_host, else its name; its
--- etcd_client_port var, else the port), configured and returned. Kubespray's and kubeadm's
--- inventories name the etcd members in an `etcd` group: etcd.from_inventory(inv:group("etcd")).
function M.from_inventory(hosts, opts)
  opts = check.options(opts, { "port", "scheme" }, "etcd.from_inventory")
  local eps = {}
  for _, h in ipairs(hosts) do
    local v = h.vars or {}
    local addr = v.etcd_access_address or v.ansible_host or h.name
    if tostring(addr):find(":", 1, true) then addr = "[" .. addr .. "]" end
    eps[#eps + 1] = (opts.scheme or "https") .. "://" .. addr .. ":" .. tostring(v.etcd_client_port or opts.port or 2379)
  end
  settings.endpoints = eps
  return eps
end

--- The endpoints configured.
function M.endpoints() return settings.endpoints end

-- Every call's request: the TLS settings, and its connection closed when the answer is in. The
-- runbooks that use this module restart the members it talks to; a connection kept idle (HTTP/2)
-- leaves etcd's GOAWAY unread and each member's stop waited a second for it (docs/api.md, http.request).
local function tls(req)
  req.ca_file, req.cert_file, req.key_file = settings.ca_file, settings.cert_file, settings.key_file
  req.ca_data, req.cert_data, req.key_data = settings.ca_data, settings.cert_data, settings.key_data
  req.keep_alive = false
  return req
end

local function endpoint_of(ep)
  ep = ep or settings.endpoints[1]
  if not ep then error("etcd: no endpoint (etcd.configure{endpoints = {...}})", 3) end
  return ep
end

-- POST a gateway call; returns the decoded answer or nil, err, message.
-- A call whose answer comes only when it is done (defragment) passes idle_timeout = 0.
local function call(ep, path, body, timeout, idle_timeout)
  local r, err, msg = http.request(tls { method = "POST", url = endpoint_of(ep) .. path, body = http.json_encode(body or {}),
    headers = { ["Content-Type"] = "application/json" }, timeout = timeout or settings.timeout or 10, retries = 1,
    idle_timeout = idle_timeout })
  if not r then return nil, err, msg end
  local out = http.json_decode(r.body)
  if r.status ~= 200 then
    return nil, "failed", "HTTP " .. r.status .. ": " .. ((out and (out.error or out.message)) or r.body:sub(1, 200))
  end
  if type(out) ~= "table" then return nil, "malformed", "not a JSON answer: " .. r.body:sub(1, 200) end
  return out
end

local function num(v) return tonumber(v) or 0 end

--- status(endpoint) → {version, db_size, db_size_in_use, leader, member_id, cluster_id, raft_index,
--- raft_term, revision, errors, is_learner} | nil, err, message
function M.status(ep)
  local s, err, msg = call(ep, "/v3/maintenance/status")
  if not s then return nil, err, msg end
  local h = s.header or {}
  return { endpoint = endpoint_of(ep), version = s.version, db_size = num(s.dbSize), db_size_in_use = num(s.dbSizeInUse),
    leader = s.leader, member_id = h.member_id, cluster_id = h.cluster_id, raft_index = num(s.raftIndex),
    raft_term = num(s.raftTerm), revision = num(h.revision), errors = s.errors or {}, is_learner = s.isLearner == true }
end

--- members(endpoint) → list of {id, name, peer_urls, client_urls, is_learner}
function M.members(ep)
  local r, err, msg = call(ep, "/v3/cluster/member/list")
  if not r then return nil, err, msg end
  local out = {}
  for _, m in ipairs(r.members or {}) do
    out[#out + 1] = { id = m.ID, name = m.name or "", peer_urls = m.peerURLs or {}, client_urls = m.clientURLs or {},
      is_learner = m.isLearner == true }
  end
  return out
end

--- member_remove(id, endpoint) → true | nil, err, message  (etcdctl member remove ID). A write: the
--- run's lease is checked first; under --dry-run it is said, not done.
function M.member_remove(id, ep)
  if type(id) ~= "string" or not id:match("^%d+$") then error("etcd.member_remove: id must be a member ID (a decimal string)", 2) end
  native.guard("etcd.member_remove")
  if http.dry_run() then log.info("dry-run: would remove the etcd member", { id = id }) return true end
  local r, err, msg = call(ep, "/v3/cluster/member/remove", { ID = id })
  if not r then return nil, err, msg end
  return true
end

--- member_add(peer_urls, endpoint) → {id, members} | nil, err, message  (etcdctl member add): the
--- new member's ID and the members after it (the new one has no name until it starts). Under
--- --dry-run: said, and {dry_run = true}.
function M.member_add(peer_urls, ep)
  if type(peer_urls) ~= "table" or #peer_urls == 0 then error("etcd.member_add: peer_urls must be a list of URLs", 2) end
  native.guard("etcd.member_add")
  if http.dry_run() then log.info("dry-run: would add an etcd member", { peer_urls = table.concat(peer_urls, ",") }) return { dry_run = true } end
  local r, err, msg = call(ep, "/v3/cluster/member/add", { peerURLs = peer_urls })
  if not r then return nil, err, msg end
  local out = { id = (r.member or {}).ID, members = {} }
  for _, m in ipairs(r.members or {}) do
    out.members[#out.members + 1] = { id = m.ID, name = m.name or "", peer_urls = m.peerURLs or {}, client_urls = m.clientURLs or {} }
  end
  return out
end

--- health(endpoint) → true | nil, err, message  (what `etcdctl endpoint health` asks)
--- An alarm is not ill health here (alarms() reports it): etcd's /health says false under any
--- alarm, so then a linearizable read answers, etcdctl endpoint health's own test (it needs the
--- member in a quorum with a leader; a NOSPACE alarm refuses writes only). etcdctl 3.5 also lists
--- the alarms; cluster_health does that, once, on each alarm's member.
function M.health(ep)
  local r, err, msg = http.request(tls { url = endpoint_of(ep) .. "/health", timeout = settings.timeout or 5, retries = 0 })
  if not r then return nil, err, msg end
  local body = http.json_decode(r.body)
  if r.status == 200 and body and (body.health == "true" or body.health == true) then return true end
  if body and (body.health == "false" or body.health == false) then  -- 503 in 3.4, 3.5
    local alarms = M.alarms(ep)
    if alarms and #alarms > 0 and call(ep, "/v3/kv/range", { key = "aGVhbHRo" }, settings.timeout or 5) then  -- "health"
      return true
    end
  end
  return nil, "unhealthy", (body and body.reason) or r.body:sub(1, 200)
end

--- alarms(endpoint) → list of {member_id, alarm}
function M.alarms(ep)
  local r, err, msg = call(ep, "/v3/maintenance/alarm", { action = "GET" })
  if not r then return nil, err, msg end
  local out = {}
  for _, a in ipairs(r.alarms or {}) do out[#out + 1] = { member_id = a.memberID, alarm = a.alarm or "NONE" } end
  return out
end

--- disarm(alarm, endpoint): DEACTIVATE an alarm ({member_id, alarm} from alarms()).
function M.disarm(alarm, ep)
  native.guard("etcd.disarm")
  if http.dry_run() then log.info("dry-run: would disarm", { alarm = alarm.alarm, member = alarm.member_id }) return true end
  local r, err, msg = call(ep, "/v3/maintenance/alarm", { action = "DEACTIVATE", memberID = alarm.member_id, alarm = alarm.alarm })
  if not r then return nil, err, msg end
  return true
end

--- cluster_health(endpoints) → {healthy, leader, members = {{name, endpoint, healthy, error, leader}}, alarms, problems}
--- Healthy when every member answers, exactly one leader is named, and no alarm is raised. With
--- endpoints (tunnels, proxies, the addresses this controller can reach), each member is asked at
--- the endpoint that answers for it, and a member none of them reaches is a problem; without, each
--- member is asked at its advertised client URL. A member that answers for another cluster than
--- the member list's (a fork: the same member ID, another cluster ID) is a problem, "forked".
function M.cluster_health(endpoints)
  local members, err, msg, ep_used
  for _, ep in ipairs(endpoints or settings.endpoints) do
    members, err, msg = M.members(ep)
    if members then ep_used = ep break end
  end
  if not members then return nil, err, msg end
  -- The cluster the member list came from. A member that lost its data under a manifest naming
  -- itself alone (kubeadm writes every member's so) starts a new cluster of its own, with the same
  -- member ID (etcd derives it from the peer URLs and the token): only the cluster ID tells it.
  local home = M.status(ep_used)
  local home_id = home and home.cluster_id
  local function forked(st)
    return home_id and st.cluster_id and st.cluster_id ~= home_id and string.format("it answers as another cluster (%s, " ..
      "not %s): a member that lost its data and started a new cluster of its own", st.cluster_id, home_id) or nil
  end
  local at, elsewhere = {}, {}  -- member id -> {ep, st}: what each given endpoint says it is; or another cluster's
  for _, ep in ipairs(endpoints or {}) do
    local st = M.health(ep) and M.status(ep)
    if st and forked(st) then elsewhere[st.member_id] = forked(st)
    elseif st then at[st.member_id] = { ep = ep, st = st } end
  end
  local report = { members = {}, problems = {}, leaders = {} }
  for _, m in ipairs(members) do
    local entry = { name = m.name, id = m.id }
    local ok, herr, hmsg, st
    if endpoints then
      local a = at[m.id]
      entry.endpoint = a and a.ep
      ok, st = a ~= nil, a and a.st
      if not a and elsewhere[m.id] then herr, hmsg = "forked", elsewhere[m.id]
      elseif not a then herr, hmsg = "unreachable", "none of the endpoints given answers for it" end
    else
      entry.endpoint = m.client_urls[1]
      -- One call at a time: `x and f()` keeps only f's first value, and the reason was lost
      -- (doctor said "cp2 unhealthy (no client URL: nil)" for an etcd that refused connections).
      if not entry.endpoint then
        herr, hmsg = "unreachable", "it advertises no client URL (a member added but never started)"
      else
        ok, herr, hmsg = M.health(entry.endpoint)
        if ok then st, herr, hmsg = M.status(entry.endpoint) end
        if st and forked(st) then ok, herr, hmsg, st = nil, "forked", forked(st), nil end
      end
    end
    entry.healthy = ok == true and st ~= nil and st ~= false
    if not entry.healthy then
      entry.error = tostring(herr) .. ": " .. tostring(hmsg)
      report.problems[#report.problems + 1] = m.name .. " unhealthy (" .. entry.error .. ")"
    else
      report.leaders[st.leader] = true
      entry.leader = st.leader == m.id
    end
    report.members[#report.members + 1] = entry
  end
  local n = 0
  for id in pairs(report.leaders) do n = n + 1; report.leader = id end
  if n ~= 1 then report.problems[#report.problems + 1] = n == 0 and "no leader" or "members disagree on the leader" end
  report.leaders = nil
  local alarms = M.alarms(endpoints and endpoints[1] or nil)
  report.alarms = alarms or {}
  for _, a in ipairs(report.alarms) do
    if a.alarm ~= "NONE" then
      local name
      for _, m in ipairs(members) do if m.id == a.member_id and m.name ~= "" then name = m.name end end
      report.problems[#report.problems + 1] = "alarm " .. a.alarm .. " on member " ..
        (name and name .. " (" .. a.member_id .. ")" or a.member_id)
    end
  end
  report.healthy = #report.problems == 0
  return report
end

--- snapshot(endpoint, path) → {size, sha256, revision} | nil, err, message
--- Streamed into path.part, the sha256 trailer etcd appends checked, fsynced, renamed; a cut stream
--- or a bad trailer leaves nothing at path.
function M.snapshot(ep, path)
  ep = endpoint_of(ep)
  if http.dry_run() then log.info("dry-run: would take a snapshot", { endpoint = ep, path = path }) return { dry_run = true } end
  local st, err, msg = M.status(ep)
  if not st then return nil, err, msg end
  local r, e2, m2 = native.snapshot(ep, path, { ca_file = settings.ca_file, cert_file = settings.cert_file,
    key_file = settings.key_file, ca_data = settings.ca_data, cert_data = settings.cert_data, key_data = settings.key_data,
    idle_timeout = settings.idle_timeout })
  if not r then return nil, e2, m2 end
  r.revision = st.revision
  log.info("etcd snapshot taken", { path = path, size = r.size, sha256 = r.sha256, revision = st.revision })
  return r
end

--- prune_snapshots(dir, keep, newest) → {removed, kept} | nil, err, message
--- Removes the etcd-*.db snapshots directly in dir beyond the keep newest (by time); newest, the
--- one just taken, is always kept and counts among them. Nothing else in dir is touched (a .part,
--- a symlink, another name). Under --dry-run nothing is removed: it says what would be.
function M.prune_snapshots(dir, keep, newest)
  if type(dir) ~= "string" or dir == "" then error("etcd.prune_snapshots: dir must be a directory's path", 2) end
  if math.type(keep) ~= "integer" or keep < 1 then error("etcd.prune_snapshots: keep must be an integer, 1 or more", 2) end
  local dry = http.dry_run()
  local r, err, msg = native.prune_snapshots(dir, keep, newest, not dry)
  if not r then return nil, err, msg end
  for _, path in ipairs(r.removed) do
    log.info(dry and "dry-run: would remove an old etcd snapshot" or "old etcd snapshot removed", { path = path, keep = keep })
  end
  return r
end

--- snapshot_file(path) → {size, sha256} | nil, "not found" | "corrupt", message
--- A snapshot on this machine (one etcd.snapshot took, or etcdctl snapshot save's), read whole: its
--- last 32 bytes must be the sha256 of the rest, the trailer etcd appends and a restore checks. A
--- database file copied out of a data directory has none, and is "corrupt" here. sha256: of the
--- whole file, to check a copy of it elsewhere. Reads only.
function M.snapshot_file(path)
  if type(path) ~= "string" or path == "" then error("etcd.snapshot_file: path must be a file's path", 2) end
  return native.check_snapshot(path)
end

--- defrag(endpoint) → true | nil, err, message
function M.defrag(ep)
  native.guard("etcd.defrag")
  if http.dry_run() then log.info("dry-run: would defragment", { endpoint = endpoint_of(ep) }) return true end
  local r, err, msg = call(ep, "/v3/maintenance/defragment", {}, 300, 0)
  if not r then return nil, err, msg end
  return true
end

--- compact(revision, {physical = true}) → true | nil, err, message
function M.compact(revision, opts)
  check.options(opts, { "physical" }, "etcd.compact")
  native.guard("etcd.compact")
  if http.dry_run() then log.info("dry-run: would compact", { revision = revision }) return true end
  local r, err, msg = call(nil, "/v3/kv/compaction", { revision = tostring(revision), physical = not opts or opts.physical ~= false })
  if not r then return nil, err, msg end
  return true
end

local function range_end(prefix)
  -- The smallest key greater than every key starting with prefix, as etcdctl --prefix computes it.
  local bytes = { prefix:byte(1, -1) }
  for i = #bytes, 1, -1 do
    if bytes[i] < 255 then
      bytes[i] = bytes[i] + 1
      return string.char(table.unpack(bytes, 1, i))
    end
  end
  return "\0"
end

--- get(key, {prefix}) → value (string) | nil ("not found") ; with prefix a table key → value
function M.get(key, opts)
  check.options(opts, { "prefix" }, "etcd.get")
  local body = { key = http.base64_encode(key) }
  if opts and opts.prefix then body.range_end = http.base64_encode(range_end(key)) end
  local r, err, msg = call(nil, "/v3/kv/range", body)
  if not r then return nil, err, msg end
  if opts and opts.prefix then
    local out = {}
    for _, kv in ipairs(r.kvs or {}) do out[http.base64_decode(kv.key)] = http.base64_decode(kv.value or "") end
    return out
  end
  local kv = (r.kvs or {})[1]
  if not kv then return nil, "not found" end
  return http.base64_decode(kv.value or "")
end

--- put(key, value) → true | nil, err, message
function M.put(key, value)
  native.guard("etcd.put")
  if http.dry_run() then log.info("dry-run: would put", { key = key }) return true end
  local r, err, msg = call(nil, "/v3/kv/put", { key = http.base64_encode(key), value = http.base64_encode(value) })
  if not r then return nil, err, msg end
  return true
end

--- delete(key, {prefix}) → number deleted | nil, err, message
function M.delete(key, opts)
  check.options(opts, { "prefix" }, "etcd.delete")
  native.guard("etcd.delete")
  if http.dry_run() then log.info("dry-run: would delete", { key = key }) return 0 end
  local body = { key = http.base64_encode(key) }
  if opts and opts.prefix then body.range_end = http.base64_encode(range_end(key)) end
  local r, err, msg = call(nil, "/v3/kv/deleterange", body)
  if not r then return nil, err, msg end
  return num(r.deleted)
end

--- defrag_all(endpoints, {leader_last = true, pause = seconds, gate = fn}) → list of {endpoint, member, started, finished, leader}
--- | nil, err, message, done so far. One member at a time, never two at once (seed 003, IR-3), the
--- leader last. Before the first member and before each next one, every member must be healthy
--- through the endpoints given (one per member) and one leader known (gate(ep) must pass, when
--- given): a member already down, or no leader, stops it before anything more is defragmented.
--- A NOSPACE alarm does not stop it: defragmenting (after a compaction) is how the space comes
--- back before the alarm is disarmed; any other alarm (CORRUPT) does.
function M.defrag_all(endpoints, opts)
  opts = check.options(opts, { "leader_last", "pause", "gate" }, "etcd.defrag_all")
  local pause = check.seconds(opts.pause, "etcd.defrag_all", "pause")
  endpoints = endpoints or settings.endpoints
  -- Through the endpoints given (a member's advertised URL may be unreachable from here): every
  -- member healthy and one leader, before the first member and before each next one.
  local function check(before)
    local h, herr, hmsg = M.cluster_health(endpoints)
    if not h then return nil, herr, before .. ": cluster health unknown: " .. tostring(hmsg) end
    local problems = {}
    for _, problem in ipairs(h.problems) do
      if not problem:find("^alarm NOSPACE ") then problems[#problems + 1] = problem end
    end
    if #problems > 0 then return nil, "unhealthy", before .. ": " .. table.concat(problems, "; ") end
    return h
  end
  local h, herr, hmsg = check("nothing defragmented")
  if not h then return nil, herr, hmsg, {} end
  local name_of, leader = {}, nil
  for _, m in ipairs(h.members) do
    name_of[m.endpoint] = m.name
    if m.leader then leader = m.endpoint end
  end
  if not leader then return nil, "no leader", "nothing defragmented: cannot tell which member leads", {} end
  local order = {}
  for _, ep in ipairs(endpoints) do if ep ~= leader then order[#order + 1] = ep end end
  if opts.leader_last == false then table.insert(order, 1, leader) else order[#order + 1] = leader end
  local done = {}
  for i, ep in ipairs(order) do
    if i > 1 then
      if pause then sleep(pause) end
      local ok, e2, m2 = check("stopped before " .. tostring(name_of[ep]) .. " (" .. ep .. ")")
      if not ok then return nil, e2, m2, done end
      if opts.gate then
        local pass, word, message = opts.gate(ep)  -- true, or nil, word, message (std.gates) or nil, why
        if not pass then
          return nil, "gate", "stopped before " .. tostring(name_of[ep]) .. " (" .. ep .. "): " .. tostring(message or word), done
        end
      end
    end
    local started = time.now()
    local ok, err, msg = M.defrag(ep)
    if not ok then return nil, err, "defragmenting " .. tostring(name_of[ep]) .. " (" .. ep .. "): " .. tostring(msg), done end
    done[#done + 1] = { endpoint = ep, member = name_of[ep], started = started, finished = time.now(), leader = ep == leader }
    log.info("defragmented", { member = name_of[ep], endpoint = ep, leader = ep == leader })
  end
  return done
end

--- members_match(hosts) → true | nil, "mismatch", message (or etcd's err, message): every etcd member is named after an inventory host
--- and every host has a member (seed 003, IR-6: a member renamed by hand breaks the migration).
function M.members_match(hosts)
  local members, err, msg = M.members()
  if not members then return nil, err, msg end
  local names, want, problems = {}, {}, {}
  for _, m in ipairs(members) do names[m.name] = true end
  for _, h in ipairs(hosts) do
    local n = type(h) == "table" and (h.vars and h.vars.etcd_member_name or h.name) or h
    want[n] = true
    if not names[n] then problems[#problems + 1] = "no member named " .. n end
  end
  for _, m in ipairs(members) do
    if not want[m.name] then problems[#problems + 1] = "member " .. m.name .. " (" .. m.id .. ") is not an inventory host" end
  end
  if #problems > 0 then table.sort(problems); return nil, "mismatch", table.concat(problems, "; ") end
  return true
end

-- Files on a node, read with sudo (kubeadm's etcd keys are root's, 0600), in one exec: each one's
-- bytes then a NUL, which no PEM file holds. One exec, not one a file: every etcd runbook's
-- preflight reads the CA, certificate and key this way.
local function node_files(host, paths, sudo)
  local q = require("engine.ssh").quote
  local cmd = {}
  for i, path in ipairs(paths) do cmd[i] = "cat -- " .. q(path) .. " && printf '\\0'" end
  local r, err, msg = host:exec(table.concat(cmd, " && "), { sudo = sudo ~= false, read_only = true, timeout = 30 })
  if not r then return nil, err, msg end
  -- cat's own message names the file it could not read
  if r.code ~= 0 then return nil, "failed", "reading etcd's client files on " .. host.name .. ": " .. r.stderr end
  local bodies = {}
  for body in r.stdout:gmatch("([^\0]*)\0") do bodies[#bodies + 1] = body end
  if #bodies ~= #paths then
    return nil, "failed", "reading etcd's client files on " .. host.name .. ": a file holds a NUL byte: " .. table.concat(paths, ", ")
  end
  return bodies
end

-- An address and port that go into an etcdctl command line: strict shapes only (an IP, a
-- hostname or a bracketed IPv6 address; a port number). Anything else raises, naming the value.
local function endpoint_parts(address, port, what)
  address = address or "127.0.0.1"
  port = port or 2379
  if type(address) ~= "string" or not (address:match("^[%w][%w%.%-]*$") or address:match("^%[[%x:%.]+%]$")) then
    error(string.format("%s: address %q is not an IP address or host name", what, tostring(address)), 3)
  end
  local n = math.tointeger(tonumber(port))
  if not n or n < 1 or n > 65535 then
    error(string.format("%s: port %q is not a port number", what, tostring(port)), 3)
  end
  return address, n
end

local function pki_paths(opts)
  local pki = opts.pki or "/etc/kubernetes/pki/etcd"
  return opts.ca or (pki .. "/ca.crt"), opts.cert or (pki .. "/healthcheck-client.crt"), opts.key or (pki .. "/healthcheck-client.key")
end

--- via_node(host, {address = "127.0.0.1", port = 2379, pki = "/etc/kubernetes/pki/etcd", ca, cert, key,
--- sudo = true}) → tunnel | nil, err, message. For an etcd that answers only on the node: a tunnel
--- to the node's address:port (its loopback by default), and the node's client certificate read over SSH into memory
--- (never written here). Keep the tunnel as long as etcd calls are made.
local NODE_TLS = { "address", "port", "pki", "ca", "cert", "key", "sudo" }

function M.via_node(host, opts)
  host = inventory.host(host, "etcd.via_node")
  opts = check.options(opts, NODE_TLS, "etcd.via_node")
  local address, port = endpoint_parts(opts.address, opts.port, "etcd.via_node")
  local ssh = require "engine.ssh"
  local ca_path, cert_path, key_path = pki_paths(opts)
  local files, err, msg = node_files(host, { ca_path, cert_path, key_path }, opts.sudo)
  if not files then return nil, err, msg end
  local ca, cert, key = files[1], files[2], files[3]
  log.secret(key)
  local t, e4, m4 = ssh.tunnel(host, address, port)
  if not t then return nil, e4, m4 end
  M.configure { endpoints = { "https://127.0.0.1:" .. t.port }, ca_data = ca, cert_data = cert, key_data = key }
  return t
end

--- snapshot_via_ssh(host, path, {port, pki, ca, cert, key, remote_dir = "/var/tmp"}) → {size, sha256}
--- `etcdctl snapshot save` on the node (for clusters whose etcd answers only there), then the file
--- downloaded and its sha256 compared with the node's; the copy on the node is removed.
function M.snapshot_via_ssh(host, path, opts)
  host = inventory.host(host, "etcd.snapshot_via_ssh")
  opts = check.options(opts, { "address", "port", "pki", "ca", "cert", "key", "sudo", "remote_dir", "timeout" },
    "etcd.snapshot_via_ssh")
  local timeout_s = check.seconds(opts.timeout, "etcd.snapshot_via_ssh", "timeout") or 600
  if http.dry_run() then log.info("dry-run: would take a snapshot on the node", { node = host.name, path = path }) return { dry_run = true } end
  local ca, cert, key = pki_paths(opts)
  local address, port = endpoint_parts(opts.address, opts.port, "etcd.snapshot_via_ssh")
  local remote = (opts.remote_dir or "/var/tmp") .. "/engine-snapshot-" .. math.random(1, 1e9) .. ".db"
  local q = require("engine.ssh").quote
  -- The copy holds every Secret of the cluster: readable by the login user only (sudo's SUDO_UID),
  -- for the SFTP download that follows, never by everyone.
  local cmd = table.concat({ "ETCDCTL_API=3 etcdctl", q("--endpoints=https://" .. address .. ":" .. port),
    q("--cacert=" .. ca), q("--cert=" .. cert), q("--key=" .. key), "snapshot save", q(remote),
    "&& chown \"${SUDO_UID:-0}\"", q(remote), "&& chmod 0600", q(remote), "&& sha256sum", q(remote) }, " ")
  local r, err, msg = host:exec(cmd, { sudo = opts.sudo ~= false, timeout = timeout_s })
  if not r then return nil, err, msg end
  if r.code ~= 0 then return nil, "failed", "etcdctl snapshot save on " .. host.name .. " exited " .. r.code .. ": " .. r.stderr end
  local remote_sum = r.stdout:match("(%x+)%s+" .. remote:gsub("%p", "%%%0"))
  -- Downloaded to PATH.part, kept at PATH only if its sha256 is the node's.
  local d, e2, m2 = host:download(remote, path .. ".part")
  host:exec("rm -f " .. q(remote), { sudo = opts.sudo ~= false })
  if not d then return nil, e2, m2 end
  if not remote_sum then return nil, "failed", "no sha256sum from the node: " .. r.stdout end
  local ok, e3, m3 = native.commit_download(path, remote_sum)
  if not ok then return nil, e3, m3 end
  local sum = ok.sha256
  log.info("etcd snapshot taken on the node", { node = host.name, path = path, size = d.bytes, sha256 = sum })
  return { size = d.bytes, sha256 = sum }
end

return M
