// fleet.each's results table: its counts at once, its per-host entries made when first read. A
// fleet of 100,000 hosts whose caller reads res.ok (or a few entries) does not pay for 100,000
// tables, ~20 MB of fresh memory and most of what fleet.each itself cost there (bench/scheduler).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bindings/lua.hpp"

namespace engine::lua {

// What the entries are made from. status[i] is fleet.each's Result::Status (not started, running,
// ok, failed, skipped; bindings/fleet.cpp); values are registry references to what the hosts'
// functions returned, and hosts_ref one to the host list (for each entry's `host` and `name`):
// all released when the results are collected.
struct FleetResults {
  std::vector<uint8_t> status;
  std::vector<float> seconds;
  std::map<size_t, std::string> errors;
  std::map<size_t, int> values;
  int hosts_ref = LUA_NOREF;
};

// Pushes a new, empty FleetResults (a userdata) to fill in, then push_results_table().
FleetResults* push_results_data(lua_State* L);
// Over the FleetResults on top (popped): the results table, pushed. res[i], ipairs, #res, pairs
// and a JSON encoding (fill_results, bindings/lua.hpp) see every entry; next and rawget see the
// ones read so far.
void push_results_table(lua_State* L, size_t ok, size_t failed, size_t skipped);
// The userdata's metatable (its __gc); engine.fleet's loader calls it.
void register_results_meta(lua_State* L);
// An element's name as fleet.each shows it: the string itself, its `name` field, or "#i".
std::string name_of(lua_State* L, int idx, size_t i);

}  // namespace engine::lua
