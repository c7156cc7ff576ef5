// The natives behind step() (stdlib/prelude.lua): step keys, journal lookups and records.
#include "bindings/vm.hpp"
#include "engine/journal/journal.hpp"
#include "engine/log/log.hpp"
#include "engine/run/report.hpp"

namespace engine::lua {

namespace {

// When each step of this run started, for the report's durations.
std::map<std::string, std::chrono::steady_clock::time_point>& starts() {
  static std::map<std::string, std::chrono::steady_clock::time_point> m;
  return m;
}

double since(const std::string& key) {
  auto it = starts().find(key);
  if (it == starts().end()) return 0;
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second).count();
  starts().erase(it);
  return s;
}

// step_key(name) → "host/name[#n]" for this task's nth step of that name, or nil without a journal.
int l_step_key(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  guard(L, ("step " + name).c_str());  // a step starts only while the run's lease (if any) holds
  Vm& vm = vm_of(L);
  Task* t = current_task(L);
  if (!vm.journal || !t) {
    lua_pushnil(L);
    return 1;
  }
  int n = ++t->step_counts[name];
  std::string key;  // appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on the one-expression form
  if (!t->host.empty()) key.append(t->host).append("/");
  key.append(name);
  if (n > 1) key.append("#").append(std::to_string(n));
  lua_pushstring(L, key.c_str());
  return 1;
}

// step_lookup(key) → nil | "intent" | "failed", error | "done", results, n
int l_step_lookup(lua_State* L) {
  Vm& vm = vm_of(L);
  auto e = vm.journal ? vm.journal->lookup(luaL_checkstring(L, 1)) : std::nullopt;
  if (!e) return 0;
  switch (e->state) {
    case journal::Entry::intent:
      lua_pushstring(L, "intent");
      return 1;
    case journal::Entry::failed:
      lua_pushstring(L, "failed");
      lua_pushstring(L, e->error.c_str());
      return 2;
    case journal::Entry::done:
      run::report().step(luaL_checkstring(L, 1), "skipped", 0, e->result, "done in an earlier run");
      lua_pushstring(L, "done");
      lua_createtable(L, static_cast<int>(e->result.size()), 0);
      for (size_t i = 0; i < e->result.size(); ++i) {
        push_json(L, e->result[i]);
        lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
      }
      lua_pushinteger(L, static_cast<lua_Integer>(e->result.size()));
      return 3;
  }
  return 0;
}

// After a record: the step goes on once the record is committed: on disk (the journal's thread
// fdatasyncs, engine/journal) and, with the journal kept in the cluster too, in the cluster. The
// task waits without holding the loop (other hosts' steps go on, and their records join the same
// fdatasync and the same request); an error (a failed fsync, the API refused it, another engine
// writes the run) is raised.
int until_committed(lua_State* L, Vm& vm) {
  uint64_t seq = vm.journal->records();
  {
    auto now = vm.journal->committed(seq);
    if (now && now->empty()) return 0;
    if (now) return luaL_error(L, "%s", now->c_str());
  }
  {
    Op op = begin(L, "step");
    arm(op, nothing_to_undo);  // the record goes anyway: a cancelled step keeps it, as a killed run would
    vm.journal->when_committed(seq, [op](const std::string& error) {
      complete(op, [error](lua_State* co) {
        if (error.empty()) return 0;
        lua_pushstring(co, error.c_str());
        return 1;
      }, !error.empty());
    });
  }
  return suspend(L);
}

int l_step_intent(lua_State* L) {
  Vm& vm = vm_of(L);
  if (Task* t = current_task(L)) t->uncertain = false;
  starts()[luaL_checkstring(L, 1)] = std::chrono::steady_clock::now();
  try {
    vm.journal->intent(luaL_checkstring(L, 1));
  } catch (const std::exception& e) {
    return luaL_error(L, "%s", e.what());  // no record, no side effect: the step does not start
  }
  return until_committed(L, vm);  // nor before it is on disk (and in the cluster)
}

// step_done(key, ...) — the step's results, as JSON (a value JSON cannot hold is kept as its text).
int l_step_done(lua_State* L) {
  Vm& vm = vm_of(L);
  std::string key = luaL_checkstring(L, 1);
  json results = json::array();
  for (int i = 2; i <= lua_gettop(L); ++i) results.push_back(to_json(L, i));
  results = log::redact_json(results);  // a secret a step returns comes back as "<secret>" on resume
  run::report().step(key, "done", since(key), results, "");
  try {
    vm.journal->done(key, results);
  } catch (const std::exception& e) {
    return luaL_error(L, "%s", e.what());
  }
  return until_committed(L, vm);
}

int l_step_failed(lua_State* L) {
  Vm& vm = vm_of(L);
  if (Task* t = current_task(L); t && t->uncertain) {
    // Its only record stays the INTENT: a resume asks its probe (or the operator), never reruns blindly.
    t->uncertain = false;
    std::string key = luaL_checkstring(L, 1);
    run::report().step(key, "unknown", since(key), nullptr, log::redact(luaL_checkstring(L, 2)));
    log::emit(log::Level::warn, t->host, "step outcome unknown: a command's connection died while it ran",
              {{"step", key}});
    return 0;
  }
  run::report().step(luaL_checkstring(L, 1), "failed", since(luaL_checkstring(L, 1)), nullptr, log::redact(luaL_checkstring(L, 2)));
  try {
    vm.journal->failed(luaL_checkstring(L, 1), luaL_checkstring(L, 2));
  } catch (const std::exception& e) {
    log::emit(log::Level::error, "", "journal write failed", {{"error", e.what()}});
    return 0;
  }
  if (vm.journal->committed(vm.journal->records())) return 0;
  // Committed before the step's error goes on; if it cannot be, the step's own error is the
  // one to raise (the journal's is logged when the batch fails, and fails the run's later steps).
  {
    Op op = begin(L, "step");
    arm(op, nothing_to_undo);
    vm.journal->when_committed(vm.journal->records(), [op](const std::string& error) {
      if (!error.empty()) log::emit(log::Level::error, "", "journal write failed", {{"error", error}});
      complete(op, [](lua_State*) { return 0; });
    });
  }
  return suspend(L);
}

int l_retry_unknown(lua_State* L) {
  lua_pushboolean(L, vm_of(L).retry_unknown);
  return 1;
}

// step_enter(name) / step_leave(): the step a task is in, for logs and a dry run's plan.
int l_step_enter(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  if (Task* t = current_task(L)) {
    t->steps.push_back(name);
    log::set_current_step(name);
    log::progress_step(t->host, name);
  }
  return 0;
}

int l_step_leave(lua_State* L) {
  if (Task* t = current_task(L); t && !t->steps.empty()) {
    t->steps.pop_back();
    log::set_current_step(t->steps.empty() ? std::string() : t->steps.back());
  }
  return 0;
}

// declare_failure(msg): fail()'s message, so the run's end says it once, without a traceback.
int l_declare_failure(lua_State* L) {
  Vm& vm = vm_of(L);
  if (vm.declared_failures.size() < 1000) vm.declared_failures.push_back(luaL_checkstring(L, 1));
  return 0;
}

}  // namespace

void add_journal_natives(lua_State* L) {
  const luaL_Reg fns[] = {{"step_enter", l_step_enter}, {"step_leave", l_step_leave},{"step_key", l_step_key},       {"step_lookup", l_step_lookup}, {"step_intent", l_step_intent},
                          {"step_done", l_step_done},     {"step_failed", l_step_failed}, {"retry_unknown", l_retry_unknown},
                          {"declare_failure", l_declare_failure},
                          {nullptr, nullptr}};
  set_funcs(L, fns);
}

}  // namespace engine::lua
