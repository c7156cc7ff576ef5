// engine check, engine run and engine resume.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include "bindings/runtime.hpp"
#include "cli/commands.hpp"
#include "engine/core/errors.hpp"
#include "engine/core/hash.hpp"
#include "engine/journal/journal.hpp"
#include "engine/log/log.hpp"
#include "engine/run/cluster_store.hpp"
#include "engine/run/lock.hpp"
#include "engine/run/report.hpp"
#include "engine/run/run_dir.hpp"
#include "engine/ssh/exec.hpp"

namespace engine::cli {

namespace {

// What a run records about itself, so `engine resume` can run it again the same way.
// Params as recorded and hashed: a secret's value is never written down (resume takes it again).
nlohmann::json recordable(const engine::lua::RunbookInfo& info, const nlohmann::json& params) {
  nlohmann::json out = params;
  for (const auto& spec : info.params)
    if (spec.secret && out.contains(spec.name)) out[spec.name] = "<secret>";
  return out;
}

std::vector<std::string> recordable_extra(const engine::lua::RunbookInfo& info, const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  for (const auto& e : extra) {
    std::string key = e.substr(0, e.find('='));
    auto it = std::find_if(info.params.begin(), info.params.end(), [&](auto& p) { return p.name == key; });
    if (it == info.params.end() || !it->secret) out.push_back(e);
  }
  return out;
}

nlohmann::json run_record(const Args& a, const engine::run::RunDir& run, const engine::lua::RunbookInfo& info,
                          const nlohmann::json& params) {
  namespace fs = std::filesystem;
  nlohmann::json inventories = nlohmann::json::array();
  for (const auto& i : a.inventories) inventories.push_back(fs::exists(i) ? fs::absolute(i).string() : i);
  return {{"id", run.id},
          {"runbook", fs::absolute(a.runbook).string()},
          {"runbook_sha256", engine::sha256_file(a.runbook).value_or("")},
          {"extra", recordable_extra(info, a.extra)},
          {"params_sha256", engine::sha256_hex(recordable(info, params).dump())},
          {"inventories", inventories},
          {"limit", a.limit},
          {"kubeconfig", a.kubeconfig},
          {"context", a.context},
          {"dry_run", a.dry_run},  // engine resume refuses it: a resume is a real run
          {"engine", ENGINE_VERSION}};
}
void write_json(const std::filesystem::path& path, const nlohmann::json& j) {
  std::string tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
  }
  std::filesystem::rename(tmp, path);
}
void setup_logs(const Args& a, const engine::run::RunDir& run) {
  engine::log::Options lo;
  lo.format = a.log_format == "json" ? engine::log::Format::json : engine::log::Format::text;
  lo.level = *engine::log::parse_level(a.verbose > 0 ? "debug" : a.log_level);
  if (a.verbose > 1) ::setenv("ENGINE_HTTP_DEBUG", "1", 1);  // -vv: every HTTP exchange traced too
  lo.file = (run.path / "run.log").string();
  // Colour and the live table only on a terminal that can show them: NO_COLOR (no-color.org) and
  // TERM=dumb turn both off.
  const char* no_color = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  lo.color = lo.format == engine::log::Format::text && isatty(STDOUT_FILENO) && !(no_color && *no_color) &&
             !(term && std::string(term) == "dumb");
  engine::log::setup(lo);
  engine::log::progress_enable(lo.color);  // the live table only on a terminal, with text logs
}

// Values no output may show: params declared secret, and inventory variables of the secret kinds.
void register_secrets(const engine::lua::RunbookInfo& info, const nlohmann::json& params,
                      const engine::inventory::Inventory* inv) {
  for (const auto& spec : info.params) {
    if (!spec.secret || !params.contains(spec.name)) continue;
    const auto& v = params[spec.name];
    if (v.is_string()) engine::log::add_secret(v.get<std::string>());
    else if (v.is_array())
      for (const auto& item : v)
        if (item.is_string()) engine::log::add_secret(item.get<std::string>());
  }
  if (!inv) return;
  auto scan = [](const nlohmann::json& vars) {
    for (auto it = vars.begin(); it != vars.end(); ++it)
      if (it->is_string() && engine::log::is_secret_name(it.key())) engine::log::add_secret(it->get<std::string>());
  };
  for (const auto& g : inv->group_names()) scan(inv->group(g)->vars), scan(inv->group(g)->file_vars);
  for (const auto& h : inv->host_names()) scan(inv->host(h)->vars), scan(inv->host(h)->file_vars);
}

// The body shared by run and resume: journal open, runbook run, report written.
int execute(Args& a, engine::lua::Runtime& rt, const engine::lua::RunbookInfo& info, const nlohmann::json& params,
            const engine::run::RunDir& run, bool resuming, engine::run::ClusterStore* store) {
  engine::run::RunLock lock(run.path);  // held until this process ends: `engine runs` shows it running
  std::vector<std::string> warnings;
  std::unique_ptr<engine::journal::Journal> journal;
  if (!a.dry_run) {
    try {
      journal = std::make_unique<engine::journal::Journal>((run.path / "journal").string(), warnings);
    } catch (const std::exception& e) {
      throw engine::ConfigError(e.what());
    }
    // Each record on disk before its step goes on, fdatasync'ed off the loop: the steps of several
    // hosts share one, and a slow disk holds only the steps whose records wait for it.
    journal->sync_in_background({[&rt](std::function<void()> fn) { boost::asio::post(rt.loop(), std::move(fn)); },
                                 [&rt]() -> std::shared_ptr<void> {
                                   return std::make_shared<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
                                       rt.loop().get_executor());
                                 }});
    // k8s:// state: each record in the cluster before its step goes on; the step waits for it
    // without holding the loop, so the records of several hosts' steps go in one request.
    if (store)
      journal->mirror = [store, &rt, id = run.id](uint64_t seq, const std::string& line, engine::journal::Journal::Sent sent) {
        store->append_async(rt.loop(), id, seq, line, std::move(sent));
      };
  }
  nlohmann::json shown = nlohmann::json::object();
  for (const auto& spec : info.params)
    if (params.contains(spec.name)) shown[spec.name] = spec.secret ? nlohmann::json("<secret>") : params[spec.name];
  engine::run::report().begin(run.id, info.name, a.runbook, shown);
  engine::log::emit(engine::log::Level::info, "", resuming ? "run resumed" : "run started",
                    {{"run", run.id}, {"runbook", info.name}, {"dir", run.path.string()}, {"dry_run", a.dry_run},
                     {"journaled_records", journal ? journal->records() : 0}});
  if (!a.left_out.empty()) {
    engine::run::report().left_out(a.left_out);
    engine::log::emit(engine::log::Level::warn, "", "this resume leaves hosts of the run out (--limit)",
                      {{"limit", a.narrower}, {"hosts", a.left_out}});
  }
  for (const auto& w : warnings) engine::log::emit(engine::log::Level::warn, "", w);

  engine::lua::RunOptions ro{a.dry_run, a.yes, run.id, a.kubeconfig, a.context, journal.get(), (run.path / "control").string()};
  ro.retry_unknown = a.retry_unknown;
  ro.verbose = a.verbose > 0;
  std::optional<ControlRelay> relay;  // k8s://: engine ctl reaches this run from any machine
  if (store && !a.dry_run) relay.emplace(a, run.id, run.path / "control");
  // However the run ends (rt.run may throw), the store lets go of the run's loop while it is there.
  struct DetachOnExit {
    engine::run::ClusterStore* store;
    engine::journal::Journal* journal;
    ~DetachOnExit() {
      if (!store) return;
      journal->stop_mirror();
      store->detach();
    }
  } detach_on_exit{store && journal ? store : nullptr, journal.get()};
  int code = rt.run(params, ro);
  relay.reset();
  if (store && journal) {  // records no step waited for (a cancelled run's last ones): written now
    journal->stop_mirror();  // a task still waiting (the run was cancelled) is not resumed after the run
    detach_on_exit.store = nullptr;
    std::string lost = store->detach();
    if (!lost.empty()) {
      engine::log::emit(engine::log::Level::error, "", "the run's last journal records did not reach the cluster",
                        {{"error", lost}});
      if (code == 0) code = 1;
    }
  }
  if (journal) {  // the records no step waited for (a cancelled run's last ones) on disk too
    if (std::string lost = journal->finish_sync(); !lost.empty()) {
      engine::log::emit(engine::log::Level::error, "", "the run's journal is not on disk", {{"error", lost}});
      if (code == 0) code = 1;
    }
  }
  // What the run wrote must be on disk for it to count: a report or run log that could not be
  // written (a full disk) fails the run, naming the file.
  std::vector<std::string> lost;
  std::string report_path;
  try {
    report_path = engine::run::report().finish(run.path.string(), code);
    if (store && !a.dry_run) {
      std::ifstream f(report_path, std::ios::binary);
      std::stringstream text;
      text << f.rdbuf();
      store->put_report(run.id, text.str());
    }
  } catch (const std::exception& e) {
    lost.push_back(e.what());
  }
  if (auto e = engine::log::file_error(); !e.empty()) lost.push_back("cannot write the run log " + e);
  if (!a.junit.empty()) {
    std::ofstream f(a.junit);
    f << engine::run::report().junit();
    f.flush();
    if (!f) lost.push_back("cannot write " + a.junit);
  }
  if (!lost.empty() && code == 0) code = 1;
  if (a.log_format == "text") {
    engine::log::flush();
    std::string tail = engine::run::report().recap_text();
    // "ok" is each host's last fleet.each: a run that failed after it did not leave them done.
    if (!tail.empty() && code != 0)
      tail += "  (a host's status is its last fleet.each's, in the phase shown; the run itself " +
              std::string(code == 130 ? "was interrupted" : "failed") + ")\n";
    if (a.dry_run) tail = engine::run::report().plan_text() + tail;
    std::fputs(("\n" + tail).c_str(), stdout);
    std::fflush(stdout);
  }
  for (const auto& l : lost) {
    engine::log::emit(engine::log::Level::error, "", "run record lost", {{"error", l}});
    std::fprintf(stderr, "engine: %s\n", l.c_str());
  }
  engine::log::emit(code == 0 ? engine::log::Level::info : engine::log::Level::error, "", "run finished",
                    {{"run", run.id}, {"exit", code}, {"report", report_path}});
  // The resume hint only when a resume would do something: a step done, or one cut short (its
  // probe decides). Steps that only failed are run again by a resume as by a new run, and a new
  // run may change the params the failure asks to change (a preflight's "-e quiet_hours=0").
  // For a bug in the runbook, after fixing it (--force: the runbook changed).
  std::string where = a.state_dir.empty() ? "" : " --state-dir " + a.state_dir;
  bool recorded = false;
  if (journal)
    for (const auto& [key, entry] : journal->steps())
      if (entry.state != engine::journal::Entry::failed) recorded = true;
  auto ending = rt.ending();
  if ((code == 1 || code == 130) && lost.empty()) {
    if (info.read_only)  // its answer is only as fresh as the run: never a resume
      std::fprintf(stderr, "%s changes nothing: %s\n", info.name.c_str(),
                   ending == engine::lua::Ending::code_error
                       ? "fix the runbook, then run it again"
                       : "once the cause is fixed, run it again for a fresh answer (a resume would repeat this one)");
    else if (!recorded && ending != engine::lua::Ending::interrupted)
      std::fprintf(stderr, "nothing was recorded as done: after fixing the cause, run it again\n");
    else if (ending == engine::lua::Ending::code_error)
      std::fprintf(stderr, "fix the runbook, then continue it with: engine resume %s --force%s (finished steps are skipped)\n",
                   run.id.c_str(), where.c_str());
    else
      std::fprintf(stderr, "continue it with: engine resume %s%s\n", run.id.c_str(), where.c_str());
  }
  if (!a.left_out.empty() && lost.empty() && (code == 0 || code == 1 || code == 130)) {
    std::string names;
    for (size_t i = 0; i < a.left_out.size() && i < 10; ++i) names += (i ? ", " : "") + a.left_out[i];
    if (a.left_out.size() > 10) names += " and " + std::to_string(a.left_out.size() - 10) + " more";
    // Not "not done for it": a host left out may have had nothing left, which only the runbook knows.
    std::fprintf(stderr, "left out by --limit %s: %s; whatever the run still has to do there is not done: once %s can be "
                 "reached, engine resume %s%s does it (the steps done are skipped)\n", engine::ssh::shell_quote(a.narrower).c_str(),
                 names.c_str(), a.left_out.size() == 1 ? "it" : "they", run.id.c_str(), where.c_str());
  }
  // A host it could not connect to at all: the run stopped for it, and the way on without it is
  // the operator's choice, not a default. A runbook that can skip such hosts itself (its
  // skip_unreachable param: k8s-upgrade's workers) is better told so than cut short by --limit,
  // which leaves the host out of the run for good (the upgrade would end done, that worker at its
  // old version), where a skipped host is listed and a resume upgrades it.
  if (code == 1 && lost.empty()) {
    auto gone = engine::run::report().unreachable_failed();
    if (!gone.empty()) {
      std::string limit = a.limit;
      size_t shown = 0;
      for (const auto& [host, why] : gone) {
        if (++shown <= 10) std::fprintf(stderr, "%s was not reachable over SSH: %s\n", host.c_str(), why.c_str());
        limit += (limit.empty() ? "!" : ":!") + host;
      }
      if (gone.size() > 10)  // each is among report.json's warnings ("ssh failed") too
        std::fprintf(stderr, "... and %zu more hosts not reachable over SSH\n", gone.size() - 10);
      auto skip = std::find_if(info.params.begin(), info.params.end(), [](const auto& s) {
        return s.name == "skip_unreachable" && s.type == engine::params::Type::boolean;
      });
      // A run with steps done goes on without them (the resume's own --limit joined in front);
      // one with nothing done is a new run (its own --limit joined in front).
      bool resumable = !info.read_only && recorded && ending != engine::lua::Ending::code_error;
      std::string narrower = a.narrower;
      for (const auto& [host, why] : gone) narrower += (narrower.empty() ? "!" : ":!") + host;
      if (skip != info.params.end() && params.value("skip_unreachable", true) == false)
        std::fprintf(stderr, "a run with -e skip_unreachable=true: %s\n", skip->help.c_str());
      else if (resumable)
        std::fprintf(stderr, "to go on without %s: engine resume %s%s --limit %s\n", gone.size() == 1 ? "it" : "them",
                     run.id.c_str(), where.c_str(), engine::ssh::shell_quote(narrower).c_str());
      else
        std::fprintf(stderr, "a run with --limit %s leaves %s out\n", engine::ssh::shell_quote(limit).c_str(),
                     gone.size() == 1 ? "it" : "them");
    }
  }
  engine::log::flush();
  return code;
}

}  // namespace

// The static pass's findings on stderr; returns how many are errors (warnings do not fail a check).
size_t report_findings(const std::vector<std::string>& findings) {
  size_t errors = 0;
  for (const auto& f : findings) {
    std::fprintf(stderr, "%s\n", f.c_str());
    errors += f.find(": warning: ") == std::string::npos;
  }
  return errors;
}

// engine check: the runbook, its params and the inventory, without running anything. Checked alone
// (no -e at all) a runbook's required params are listed as what a run will need, not an error;
// once any -e is given, the set must be complete.
int do_check(Args& a) {
  engine::lua::Runtime rt(engine::lua::default_stdlib_dir());
  if (a.module) {  // a module of the runbook's (or the stdlib's), checked on its own
    if (!std::filesystem::is_regular_file(a.runbook)) throw engine::ConfigError(a.runbook + ": no such file");
    if (size_t n = report_findings(rt.lint({a.runbook})))
      throw engine::ConfigError(std::to_string(n) + (n == 1 ? " problem" : " problems") + " in " + a.runbook);
    std::printf("ok: module %s\n", a.runbook.c_str());
    return 0;
  }
  auto info = rt.load(a.runbook);
  if (a.list_hosts) return print_hosts(load_inventory(a));
  std::vector<std::string> missing;
  auto params = rt.resolve_params(parse_extra(a.extra), a.extra.empty() ? &missing : nullptr);
  auto inv = load_inventory(a);
  check_connections(a, inv);
  check_cluster_flags(a, inv);
  // The static pass: what would otherwise fail mid-rollout as "attempt to call a nil value".
  auto findings = rt.lint();
  if (size_t n = report_findings(findings))
    throw engine::ConfigError(std::to_string(n) + (n == 1 ? " problem" : " problems") + " in the runbook (above); nothing ran");
  size_t hosts = 0;
  for (const auto& h : inv.host_names()) hosts += inv.visible(h);
  std::printf("ok: runbook '%s' (%zu params), inventory %zu hosts in %zu groups\n", info.name.c_str(),
              info.params.size(), hosts, inv.group_names().size());
  if (!missing.empty()) {
    std::string need;
    for (const auto& m : missing) need += " -e " + m + "=...";
    std::printf("a run needs:%s\n", need.c_str());
  }
  return 0;
}

int do_api(bool json, const std::vector<std::string>& params_of) {
  if (!params_of.empty()) {
    std::string out = "---@meta runbooks\n"
                      "-- LuaCATS classes of runbooks' params, from their declarations by `engine api --params`\n"
                      "-- (scripts/api-reference writes this file for the shipped runbooks; a test keeps it so).\n"
                      "-- A runbook annotates its run function with `---@param p params.NAME`.\n";
    for (const auto& path : params_of) {
      engine::lua::Runtime one(engine::lua::default_stdlib_dir());
      out += '\n';  // (not "\n" + ...: GCC 12 warns of a memcpy overlap there, wrongly, -Wrestrict)
      out += engine::lua::params_class(one.load(path));
    }
    std::fputs(out.c_str(), stdout);
    return 0;
  }
  engine::lua::Runtime rt(engine::lua::default_stdlib_dir());
  std::fputs(rt.api(json ? "json" : "markdown").c_str(), stdout);
  return 0;
}

int do_run(Args& a) {
  engine::lua::Runtime rt(engine::lua::default_stdlib_dir());
  auto info = rt.load(a.runbook);
  if (a.help) {
    std::fputs(engine::lua::help_text(info).c_str(), stdout);
    return 0;
  }
  if (a.list_hosts) return print_hosts(load_inventory(a));
  // engine check's static pass, said before anything runs (warnings here: engine check refuses).
  try {
    for (const auto& f : rt.lint()) std::fprintf(stderr, "warning: %s (engine check refuses this)\n", f.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: the static check could not run: %s\n", e.what());
  }
  auto params = rt.resolve_params(parse_extra(a.extra));
  auto inv = load_inventory(a);
  check_connections(a, inv);
  check_cluster_flags(a, inv);
  register_secrets(info, params, &inv);
  rt.set_inventory(std::move(inv));
  auto store = a.dry_run ? nullptr : cluster_store(a);
  if (!a.fixed_id.empty() && !a.dry_run) {
    // --run-id: the run of that id goes on where it stopped (a Job's next pod), or stays finished.
    auto root = local_state(a) / "runs";
    bool known = store ? materialize(*store, root, a.fixed_id) : std::filesystem::exists(root / a.fixed_id / "run.json");
    if (known) {
      auto rep = read_json(root / a.fixed_id / "report.json");
      if (!rep.is_null() && rep.value("outcome", "") == "ok") {
        std::printf("run %s finished already (%s): nothing to do\n", a.fixed_id.c_str(), rep.value("finished", "?").c_str());
        return 0;
      }
      Args r = a;  // the -e given now again (the same values, and secret ones the record lacks)
      r.run_id = a.fixed_id;
      r.force = false;
      return do_resume(r);
    }
  }
  if (store) store->forget_older_than(cluster_keep_days(a));
  auto run = engine::run::create(local_state(a), info.name, [&](const engine::run::RunDir& r) {
    auto rec = run_record(a, r, info, params);
    write_json(r.path / "run.json", rec);
    if (store) store->create_run(r.id, rec.dump(2));
  }, a.dry_run ? "" : a.fixed_id);
  setup_logs(a, run);
  return execute(a, rt, info, params, run, false, store.get());
}

// engine resume RUN_ID: the recorded runbook, params and inventory, run again; finished steps are
// skipped. Refuses when the runbook or its params changed since, unless --force.
int do_resume(Args& a) {
  auto store = cluster_store(a);
  auto dir = local_state(a) / "runs" / a.run_id;
  // k8s://: the cluster's records are the run (this pod may never have seen it). Not while a
  // process here runs it: its journal is not rewritten under it (its lock refuses the resume below).
  if (store && !engine::run::running_pid(dir) && !materialize(*store, dir.parent_path(), a.run_id))
    throw engine::ConfigError("no run '" + a.run_id + "' in the cluster's namespace " + store->ns());
  auto rec = read_json(dir / "run.json");
  if (rec.is_null()) throw engine::ConfigError("no run '" + a.run_id + "' under " + dir.parent_path().string());
  if (rec.value("dry_run", false)) {
    // A dry run records no step: its resume would be the whole run, for real, under a command the
    // operator typed to continue a rehearsal. Say the command that does it instead.
    std::string cmd = "engine run " + engine::ssh::shell_quote(rec.value("runbook", ""));
    for (const auto& i : rec.value("inventories", std::vector<std::string>{})) cmd += " -i " + engine::ssh::shell_quote(i);
    for (const auto& e : rec.value("extra", std::vector<std::string>{})) cmd += " -e " + engine::ssh::shell_quote(e);
    if (!rec.value("limit", "").empty()) cmd += " --limit " + engine::ssh::shell_quote(rec.value("limit", ""));
    if (!rec.value("kubeconfig", "").empty()) cmd += " --kubeconfig " + engine::ssh::shell_quote(rec.value("kubeconfig", ""));
    throw engine::ConfigError("run '" + a.run_id + "' was a dry run: it changed nothing and recorded no step, so there is " +
                              "nothing to resume; to do it for real:\n  " + cmd);
  }
  Args r = a;
  r.runbook = rec.value("runbook", "");
  // The recorded -e values, then the ones given now (secret params are given again here).
  r.extra = rec.value("extra", std::vector<std::string>{});
  for (const auto& e : a.extra) r.extra.push_back(e);
  r.inventories = rec.value("inventories", std::vector<std::string>{});
  r.limit = rec.value("limit", "");
  if (r.kubeconfig.empty()) r.kubeconfig = rec.value("kubeconfig", "");
  if (r.context.empty()) r.context = rec.value("context", "");
  auto sha = engine::sha256_file(r.runbook);
  if (!sha) throw engine::ConfigError("the run's runbook " + r.runbook + " is gone");
  if (*sha != rec.value("runbook_sha256", "") && !a.force)
    throw engine::ConfigError("the runbook " + r.runbook + " changed since the run started (sha256 " + sha->substr(0, 12) +
                              ", was " + rec.value("runbook_sha256", "").substr(0, 12) +
                              "): its steps may not mean what the journal says; resume with --force to use it anyway");
  engine::lua::Runtime rt(engine::lua::default_stdlib_dir());
  auto info = rt.load(r.runbook);
  if (info.read_only)
    throw engine::ConfigError(info.name + " changes nothing (read_only): a resume would give back the answers " + a.run_id +
                              " recorded; run it again: engine run " + r.runbook + " ...");
  nlohmann::json params;
  try {
    params = rt.resolve_params(parse_extra(r.extra));
  } catch (const engine::ConfigError& e) {
    throw engine::ConfigError(std::string(e.what()) + "\n(secret params are not recorded: give them again with -e)");
  }
  if (engine::sha256_hex(recordable(info, params).dump()) != rec.value("params_sha256", "") && !a.force) {
    bool secrets = std::any_of(info.params.begin(), info.params.end(), [](auto& p) { return p.secret; });
    throw engine::ConfigError(std::string("the runbook's params resolve differently than when the run started (its "
                                          "declarations changed); resume with --force to use them anyway") +
                              (secrets ? "\n(secret params are not recorded: give them again with -e)" : ""));
  }
  auto inv = load_inventory(r);
  if (!a.narrower.empty()) {
    std::vector<std::string> before;
    for (const auto& h : inv.host_names())
      if (inv.visible(h)) before.push_back(h);
    // Within the recorded limit (a second limit matches only what the first left visible): a host
    // the run could not reach left out, its done steps still skipped. Never a host added.
    try {
      inv.limit(a.narrower);
    } catch (const engine::ConfigError& e) {
      throw engine::ConfigError(std::string("--limit: ") + e.what());
    }
    bool any = std::any_of(inv.host_names().begin(), inv.host_names().end(), [&](auto& h) { return inv.visible(h); });
    if (!any)
      throw engine::ConfigError("--limit " + a.narrower + " leaves no host of the run" +
                                (r.limit.empty() ? std::string() : " (its recorded --limit: " + r.limit + ")"));
    for (const auto& h : before)
      if (!inv.visible(h)) r.left_out.push_back(h);
  }
  check_connections(r, inv);
  check_cluster_flags(r, inv);
  register_secrets(info, params, &inv);
  rt.set_inventory(std::move(inv));
  engine::run::RunDir run{a.run_id, dir};
  setup_logs(r, run);
  return execute(r, rt, info, params, run, true, store.get());
}

}  // namespace engine::cli
