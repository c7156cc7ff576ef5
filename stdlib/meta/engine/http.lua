---@meta engine.http
-- LuaCATS definitions for require "engine.http".

---@class engine.http
local http = {}

---@class engine.http.RequestReq
---@field method? string
---@field url string
---@field headers? table<string,string>
---@field body? string
---@field timeout? number
---@field idle_timeout? number
---@field keep_alive? boolean         false: the connection is closed when the exchange ends (default: true)
---@field retries? integer
---@field bearer? string
---@field basic_auth? {user: string, password: string}
---@field ca_file? string
---@field ca_data? string
---@field cert_file? string
---@field key_file? string
---@field cert_data? string
---@field key_data? string
---@field insecure? boolean

---@class engine.http.RequestResult
---@field status integer
---@field body string
---@field headers table<string,string>

--- Yields. nil, "timeout"|"unreachable", message when no HTTP answer came.
---@param req engine.http.RequestReq
---@return engine.http.RequestResult|nil, string|nil, string|nil
function http.request(req) end
---@param text string
---@return table|nil, string|nil
function http.json_decode(text) end
--- Raises on a table that contains itself or is nested deeper than 200 levels.
---@param value any
---@return string
function http.json_encode(value) end
--- Marks t (a new table when nil) so json_encode writes it as an array, even when empty.
---@param t? table
---@return table
function http.json_array(t) end

--- A JSON null inside an array (a nil there would cut the list short); encodes as null.
---@type lightuserdata
http.null = nil
--- One YAML document as a table (scalars typed as PyYAML types them); nil, "invalid yaml", "line L, column C: why".
---@param text string
---@return table|nil, string|nil, string|nil
function http.yaml_decode(text) end
--- One block-style YAML document, keys sorted; strings that would read back as another type ("true", "1.30", "") are quoted, so yaml_decode gives back the same table.
---@param value table
---@return string
function http.yaml_encode(value) end
--- A query value: everything but A-Za-z0-9-._~ percent-escaped.
---@param s string
---@return string
function http.query_escape(s) end
--- A URL path segment as kubectl writes it (':' '@' '$' '&' '+' '=' kept).
---@param s string
---@return string
function http.path_escape(s) end
--- RFC 4648 base64url, padded.
---@param s string
---@return string
function http.base64url(s) end
---@param s string
---@return string
function http.base64_encode(s) end
---@param s string
---@return string
function http.base64_decode(s) end
--- True under --dry-run.
---@return boolean
function http.dry_run() end

return http
