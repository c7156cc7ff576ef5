-- engine.tls: certificates as runbooks need them. inspect parses PEM text (a file read from a
-- node, a kubeconfig's embedded certificate); served asks an endpoint which chain it presents, as a
-- client that trusts nothing and shows no certificate (through the node when the endpoint listens
-- on the node's loopback only). Expected failures return nil, word, message.
local check = require "engine.check"
local native = require "engine.tls.native"

local M = {}

--- inspect(pem) → certificate | list of certificates (a bundle) | nil, "invalid", message
--- A certificate: {subject, issuer, common_name, dns_names, ip_addresses, serial, not_before,
--- not_after (epoch seconds), not_before_text, not_after_text (RFC 3339), days_left, key_algorithm,
--- is_ca, sha256, pem}. Keys and other PEM blocks in the text are skipped.
function M.inspect(pem)
  if type(pem) ~= "string" then error("tls.inspect: pem must be a string, not a " .. type(pem), 2) end
  local certs, err, msg = native.inspect(pem)
  if not certs then return nil, err, msg end
  if #certs == 1 then return certs[1] end
  return certs
end

--- inspect_all(pem) → list of certificates (one or more) | nil, "invalid", message
function M.inspect_all(pem)
  if type(pem) ~= "string" then error("tls.inspect_all: pem must be a string, not a " .. type(pem), 2) end
  return native.inspect(pem)
end

-- "https://10.0.0.1:6443/healthz", "10.0.0.1:2379", "[::1]:2379" → host, port
local function target_of(target, default_port)
  if type(target) ~= "string" or target == "" then
    error("tls.served: the endpoint must be a URL or host:port, not " .. tostring(target), 3)
  end
  local rest = target:gsub("^%a[%w+.-]*://", "")
  rest = rest:match("^[^/?#]*")
  local host, port = rest:match("^%[([%x:.]+)%]:(%d+)$")
  if not host then host, port = rest:match("^%[([%x:.]+)%]$"), nil end
  if not host then host, port = rest:match("^([^:]+):(%d+)$") end
  if not host then host = rest:match("^([^:]+)$") end
  if not host or host == "" then error("tls.served: cannot read a host in " .. target, 3) end
  port = tonumber(port) or default_port
  if not port or port < 1 or port > 65535 then error("tls.served: no port in " .. target .. " (host:port)", 3) end
  return host, port
end

--- served(endpoint, {server_name, timeout = 10, via = host}) → chain (the server's certificate
--- first) | nil, "timeout"|"refused"|"unreachable"|"not tls", message. Yields.
--- endpoint: "https://host:port/...", "host:port", "[v6]:port" (https:// without a port: 443).
--- via: an inventory host (or its name): the connection goes through an SSH tunnel from that node,
--- so an endpoint on its 127.0.0.1 (or one the controller cannot reach) is seen as the node sees it.
--- server_name: the SNI sent (default: the endpoint's host, when it is a name).
function M.served(endpoint, opts)
  opts = check.options(opts, { "server_name", "timeout", "via" }, "tls.served")
  local host, port = target_of(endpoint, endpoint:match("^https://") and 443 or nil)
  local timeout_s = check.seconds(opts.timeout, "tls.served", "timeout") or 10
  local sni = opts.server_name
  if sni ~= nil and type(sni) ~= "string" then error("tls.served: server_name must be a string", 2) end
  if opts.via == nil then return native.served(host, port, sni or host, timeout_s) end
  local ssh = require "engine.ssh"
  local tunnel, err, msg = ssh.tunnel(opts.via, host, port)
  if not tunnel then return nil, err, msg end
  local closing <close> = tunnel  -- closed on return, and when the wait is cancelled too
  local chain, e2, m2 = native.served("127.0.0.1", tunnel.port, sni or host, timeout_s)
  -- The node could not connect (nothing listens there): said as such, not as a broken handshake.
  if not chain and tunnel.last_error then return nil, "refused", "through the node: " .. tunnel.last_error end
  return chain, e2, m2
end

return M
