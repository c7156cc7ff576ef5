---@meta engine.tls
-- LuaCATS definitions for require "engine.tls": certificates parsed, and the chain an endpoint serves.

---@class engine.tls.Certificate
---@field subject string          RFC 2253: "CN=kube-apiserver,O=system:masters"
---@field issuer string
---@field common_name string      the subject's CN ("" when none)
---@field dns_names string[]      subjectAltName DNS entries
---@field ip_addresses string[]   subjectAltName IP entries
---@field serial string           lowercase hex
---@field not_before integer      epoch seconds (UTC)
---@field not_after integer
---@field not_before_text string  "2026-12-01T08:30:00Z"
---@field not_after_text string
---@field days_left integer       whole days until not_after (past it: whole days since, negative)
---@field expired boolean         not_after has passed
---@field key_algorithm string    "RSA 2048", "ECDSA P-256", "Ed25519"
---@field is_ca boolean
---@field sha256 string           fingerprint of the DER, lowercase hex
---@field pem string

---@class engine.tls
local tls = {}

--- One certificate, or a list for a bundle; nil, "invalid", message when the text holds none.
---@param pem string
---@return engine.tls.Certificate|engine.tls.Certificate[]|nil, string|nil word, string|nil message
function tls.inspect(pem) end

--- Always a list (one or more).
---@param pem string
---@return engine.tls.Certificate[]|nil, string|nil word, string|nil message
function tls.inspect_all(pem) end

---@class engine.tls.ServedOptions
---@field server_name? string
---@field timeout? number|string  (default: 10 seconds)
---@field via? engine.Host|string

--- The chain the endpoint presents (its certificate first), trusting nothing and showing no client
--- certificate. via: through an SSH tunnel from that host. Yields.
---@param endpoint string   "https://host:port/...", "host:port", "[v6]:port"
---@param opts? engine.tls.ServedOptions
---@return engine.tls.Certificate[]|nil chain, "timeout"|"refused"|"unreachable"|"not tls"|string|nil word, string|nil message
function tls.served(endpoint, opts) end

return tls
