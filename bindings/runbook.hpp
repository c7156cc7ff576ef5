// Reading a runbook declaration made by runbook{...} (bindings-internal).
#pragma once
#include "bindings/runtime.hpp"
#include "bindings/lua.hpp"

namespace engine::lua {

bool is_runbook(lua_State* L, int idx);
// The name, summary and param specs of the declaration at idx (raises on a malformed one).
RunbookInfo read_runbook(lua_State* L, int idx);
// string.find(value, pattern) ~= nil, with the string.find the sandbox started with.
bool pattern_matches(lua_State* L, const std::string& value, const std::string& pattern);

}  // namespace engine::lua
