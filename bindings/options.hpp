// One options checker and one duration reader for every module, C++ and Lua alike (Lua modules
// reach them as engine.check): an unknown option raises with a did-you-mean, a duration is
// seconds or a string like "90s", "10m", "1h30m".
#pragma once
#include <string>
#include <vector>

struct lua_State;

namespace engine::lua {

// Raises "what: unknown option 'x' (did you mean 'y'?)" for a key of the table at idx not in allowed
// (noun: "field" for a declaration such as runbook{...}).
void check_options(lua_State* L, int idx, const std::vector<std::string>& allowed, const std::string& what,
                   const char* noun = "option");
// The field of the options table at idx as seconds (0 when absent); raises naming it otherwise.
double opt_seconds(lua_State* L, int idx, const char* field, const std::string& what);
// The field as a string ("" when absent) or a boolean (false when absent); raises on another type.
std::string opt_string(lua_State* L, int idx, const char* field, const std::string& what);
bool opt_bool(lua_State* L, int idx, const char* field, const std::string& what);

void open_check(lua_State* L);

}  // namespace engine::lua
