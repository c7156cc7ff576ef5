// log.debug/info/warn/error(msg, fields) and print: lines carry the host of the task that wrote them.
#include "bindings/vm.hpp"
#include "engine/log/log.hpp"
#include "engine/run/report.hpp"

namespace engine::lua {

namespace {

std::string host_of(lua_State* L) {
  Task* t = current_task(L);
  return t ? t->host : std::string();
}

template <log::Level level>
int l_log(lua_State* L) {
  lua_settop(L, 2);  // luaL_tolstring pushes; keep the fields argument at index 2
  size_t len = 0;
  const char* msg = luaL_tolstring(L, 1, &len);
  json fields = nullptr;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    fields = to_json(L, 2);
    if (!fields.is_object()) fields = json{{"value", fields}};
  }
  log::emit(level, host_of(L), std::string_view(msg, len), fields);
  return 0;
}

// print() goes through the log, so its lines carry the host prefix and reach the run log too.
int l_print(lua_State* L) {
  std::string line;
  int n = lua_gettop(L);
  for (int i = 1; i <= n; ++i) {
    size_t len = 0;
    const char* s = luaL_tolstring(L, i, &len);
    if (i > 1) line += "\t";
    line.append(s, len);
    lua_pop(L, 1);
  }
  log::emit(log::Level::info, host_of(L), line);
  return 0;
}

// log.record(msg, fields): a line for machines (a row of a report the runbook also prints as a
// table): the run log, report.json's consumers and a JSON console get it; a text console does not,
// so people read the table once.
int l_record(lua_State* L) {
  size_t len = 0;
  const char* msg = luaL_checklstring(L, 1, &len);
  luaL_checktype(L, 2, LUA_TTABLE);
  json fields = to_json(L, 2);
  if (!fields.is_object()) fields = json{{"value", fields}};
  log::emit_quiet(log::Level::info, host_of(L), std::string_view(msg, len), fields);
  return 0;
}

// log.secret(value): from now on no output shows value (a key read from a node, a fetched token).
int l_secret(lua_State* L) {
  size_t n = 0;
  const char* v = luaL_checklstring(L, 1, &n);
  log::add_secret(std::string(v, n));
  return 0;
}

// log.clock() → seconds since the run began (monotonic): where a span starts.
int l_clock(lua_State* L) {
  lua_pushnumber(L, run::report().clock());
  return 1;
}

// log.span(kind, name, start, outcome): something that took from `start` (log.clock()) until now
// on this task's host, for report.json's timeline (drains, waits).
int l_span(lua_State* L) {
  std::string kind = luaL_checkstring(L, 1), name = luaL_checkstring(L, 2);
  double start = luaL_checknumber(L, 3);
  std::string outcome = luaL_optstring(L, 4, "ok");
  run::report().span(kind, host_of(L), name, start, outcome);
  return 0;
}

const luaL_Reg kLog[] = {{"secret", l_secret}, {"clock", l_clock}, {"span", l_span}, {"record", l_record}, {"debug", l_log<log::Level::debug>},
                         {"info", l_log<log::Level::info>},
                         {"warn", l_log<log::Level::warn>},
                         {"error", l_log<log::Level::error>},
                         {nullptr, nullptr}};

int open_module(lua_State* L) {
  new_lib(L, kLog);
  return 1;
}

}  // namespace

void open_log(lua_State* L) {
  register_module(L, "engine.log", open_module);
  open_module(L);
  lua_setglobal(L, "log");
  push_fn(L, l_print);
  lua_setglobal(L, "print");
}

}  // namespace engine::lua
