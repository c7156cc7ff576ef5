#include "engine/run/cluster_store.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <ctime>
#include <random>
#include <stdexcept>

#include "engine/core/errors.hpp"
#include "engine/http/escape.hpp"

namespace engine::run {

namespace {

using json = nlohmann::json;

std::string key_of(uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "r%08llu", static_cast<unsigned long long>(seq));
  return buf;
}

// A label value: at most 63 characters of [a-z0-9-_.], starting and ending alphanumeric.
std::string label_value(const std::string& id) {
  std::string v;
  for (char c : id) v += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c : '-';
  if (v.size() > 63) v = v.substr(v.size() - 63);
  while (!v.empty() && !std::isalnum(static_cast<unsigned char>(v.front()))) v.erase(v.begin());
  while (!v.empty() && !std::isalnum(static_cast<unsigned char>(v.back()))) v.pop_back();
  return v;
}

json configmap(const std::string& name, const std::string& id, const std::string& part, json data) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata",
           {{"name", name},
            {"labels", {{"app.kubernetes.io/managed-by", "engine"}, {"engine.dev/run", label_value(id)}, {"engine.dev/part", part}}},
            {"annotations", {{"engine.dev/run-id", id}}}}},
          {"data", std::move(data)}};
}

std::string rv_of(const json& obj) {
  return obj.contains("metadata") ? obj["metadata"].value("resourceVersion", "") : "";
}

}  // namespace

std::optional<std::string> cluster_namespace(const std::string& flag) {
  if (flag.rfind("k8s://", 0) != 0) return std::nullopt;
  std::string ns = flag.substr(6);
  while (!ns.empty() && ns.back() == '/') ns.pop_back();
  bool ok = !ns.empty() && ns.size() <= 63 && std::isalnum(static_cast<unsigned char>(ns.front())) &&
            std::isalnum(static_cast<unsigned char>(ns.back())) &&
            std::all_of(ns.begin(), ns.end(), [](char c) { return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-'; });
  if (!ok) throw ConfigError("--state-dir " + flag + ": k8s://NAMESPACE needs a namespace name (lowercase letters, digits, '-')");
  return ns;
}

ClusterStore::ClusterStore(k8s::Cluster cluster, std::string ns)
    : ns_(std::move(ns)), cluster_(cluster), api_(std::make_shared<k8s::Api>(io_, std::move(cluster))) {}

ClusterStore::~ClusterStore() { *alive_ = false; }

std::string ClusterStore::object_name(const std::string& id, const std::string& part) {
  std::string v;
  for (char c : id) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    v += std::isalnum(static_cast<unsigned char>(l)) || l == '-' || l == '.' ? l : '-';
  }
  return "engine-run-" + v + part;
}

std::string ClusterStore::path(const std::string& name) const {
  return "/api/v1/namespaces/" + ns_ + "/configmaps" + (name.empty() ? "" : "/" + name);
}

// One request, waited for: the store's own io_context runs until the reply (the engine's event
// loop is not re-entered; a journal record is worth the short block, as an fsync is).
k8s::Reply ClusterStore::call(const std::string& method, const std::string& p, const std::string& body,
                              const std::string& content_type) {
  std::optional<k8s::Reply> out;
  k8s::CallOptions opts;
  opts.content_type = content_type;
  opts.timeout = 20;
  opts.rate_limited = false;  // waited for like an fsync: holding it back would stall the whole run
  api_->call(method, p, body, opts, [&out](k8s::Reply r) { out = std::move(r); });
  io_.restart();
  while (!out && io_.run_one()) {
  }
  if (!out) throw std::runtime_error("the cluster's API: no reply to " + method + " " + p);
  return std::move(*out);
}

void ClusterStore::create_run(const std::string& id, const std::string& run_json) {
  auto r = call("POST", path(), configmap(object_name(id, ""), id, "run", {{"run.json", run_json}}).dump());
  if (!r.error.empty())
    throw ConfigError("keeping run " + id + " in the cluster (namespace " + ns_ + "): " + r.error +
                      (r.message.empty() ? "" : ": " + r.message));
}

// What a chunk holds, as the API sent it: its version, its records and their bytes (the API's
// limit counts each key and value).
void ClusterStore::adopt(size_t chunk, const json& obj) {
  chunk_ = chunk, rv_ = rv_of(obj), count_ = bytes_ = 0;
  const json data = obj.value("data", json::object());
  for (const auto& [key, value] : data.items()) {
    count_++;
    bytes_ += key.size() + (value.is_string() ? value.get_ref<const std::string&>().size() : 0);
  }
}

// The chunk after a reply that did not say: is the record there? The chunk, when it exists, is
// the one appends go to from now on. Throws when the key holds another record (another writer).
bool ClusterStore::settled(size_t chunk, const std::string& key, const std::string& value) {
  std::string name = object_name(run_, "-j" + std::to_string(chunk));
  auto g = call("GET", path(name), "");
  if (!g.error.empty() || !g.body.is_object()) return false;
  adopt(chunk, g.body);
  auto data = g.body.value("data", json::object());
  if (!data.contains(key)) return false;  // not taken: the next attempt goes with the chunk's version now
  if (data[key] != value)
    throw std::runtime_error("the run's journal in the cluster (" + ns_ + "/" + name + ") holds another record " + key +
                             ": another engine is writing this run");
  return true;
}

// The numbers of a run's journal chunks, from their labels.
std::set<size_t> ClusterStore::chunk_numbers(const std::string& id) {
  std::set<size_t> have;
  auto l = call("GET", path() + "?labelSelector=" +
                           http::query_escape("app.kubernetes.io/managed-by=engine,engine.dev/part=journal,engine.dev/run=" +
                                              label_value(id)), "");
  if (!l.error.empty()) throw ConfigError("listing run " + id + "'s journal in " + ns_ + ": " + l.error + ": " + l.message);
  std::string prefix = object_name(id, "-j");
  for (auto& item : l.body.value("items", json::array())) {
    auto meta = item.value("metadata", json::object());
    std::string name = meta.value("name", "");
    if (meta.value("annotations", json::object()).value("engine.dev/run-id", "") != id || name.rfind(prefix, 0) != 0) continue;
    try {
      size_t used = 0, n = std::stoul(name.substr(prefix.size()), &used);
      if (used == name.size() - prefix.size()) have.insert(n);
    } catch (const std::exception&) {
    }
  }
  return have;
}

// A run this writer has not read (load() does that for a resume): its last chunk, which appends go on in.
void ClusterStore::locate(const std::string& id) {
  auto have = chunk_numbers(id);
  if (have.empty()) return;
  std::string name = object_name(id, "-j" + std::to_string(*have.rbegin()));
  auto r = call("GET", path(name), "");
  if (!r.error.empty()) throw std::runtime_error("reading the run's journal in the cluster (" + ns_ + "/" + name + "): " + r.error);
  adopt(*have.rbegin(), r.body);
}

// A record over a chunk's budget, kept in parts of its own (each made before the record names
// them, so a record in the journal never points to a part not there). Cut between UTF-8
// characters: a ConfigMap's values are strings. Returns what the record's key holds instead.
std::string ClusterStore::put_parts(const std::string& id, uint64_t seq, const std::string& line) {
  std::random_device rd;
  char token[12];
  std::snprintf(token, sizeof token, "%08x", static_cast<unsigned>(rd()));
  size_t parts = 0;
  for (size_t off = 0; off < line.size(); ++parts) {
    size_t len = std::min(kPartBytes, line.size() - off);
    while (off + len < line.size() && len > 0 && (static_cast<unsigned char>(line[off + len]) & 0xC0) == 0x80) --len;
    std::string slice = line.substr(off, len), name = object_name(id, "-r" + std::to_string(seq) + "-" + token + "-" +
                                                                          std::to_string(parts)), last;
    bool stored = false;
    for (int attempt = 0; attempt < 4 && !stored; ++attempt) {
      auto r = call("POST", path(), configmap(name, id, "record", {{"part", slice}}).dump());
      if (r.error.empty()) {
        stored = true;
        break;
      }
      last = r.error + (r.message.empty() ? "" : ": " + r.message);
      auto g = call("GET", path(name), "");  // a reply lost on the way: made after all?
      stored = g.error.empty() && g.body.value("data", json::object()).value("part", "") == slice;
    }
    if (!stored)
      throw std::runtime_error("the cluster did not take part " + std::to_string(parts) + " of journal record " +
                               std::to_string(seq) + " of run " + id + " (" + ns_ + "/" + name + "): " + last);
    off += len;
  }
  return "@parts " + std::string(token) + " " + std::to_string(parts) + " " + std::to_string(line.size());
}

// A record as the journal holds it: itself, or its parts put together.
std::string ClusterStore::resolve(const std::string& id, const std::string& chunk, const std::string& key,
                                  const std::string& value) {
  if (value.rfind("@parts ", 0) != 0) return value;
  char token[16] = "";
  unsigned long parts = 0, bytes = 0;
  if (std::sscanf(value.c_str(), "@parts %15s %lu %lu", token, &parts, &bytes) != 3)
    throw ConfigError("run " + id + "'s journal in the cluster (" + ns_ + "/" + chunk + "): record " + key +
                      " is neither a record nor parts of one: '" + value.substr(0, 80) + "'");
  std::string seq = std::to_string(std::stoull(key.substr(1))), out;
  for (unsigned long k = 0; k < parts; ++k) {
    std::string name = object_name(id, "-r" + seq + "-" + token + "-" + std::to_string(k));
    auto r = call("GET", path(name), "");
    if (!r.error.empty())
      throw ConfigError("run " + id + "'s journal record " + seq + " is kept in " + std::to_string(parts) + " parts and " +
                        ns_ + "/" + name + " cannot be read (" + r.error + "): what it recorded cannot be told");
    out += r.body.value("data", json::object()).value("part", "");
  }
  if (out.size() != bytes)
    throw ConfigError("run " + id + "'s journal record " + seq + ": its " + std::to_string(parts) + " parts hold " +
                      std::to_string(out.size()) + " bytes, not the " + std::to_string(bytes) +
                      " it was written with: what it recorded cannot be told");
  return out;
}

// The first record this writer sends for a run: where its journal goes on (load() has read it for a resume).
void ClusterStore::begin_run(const std::string& id, uint64_t seq) {
  if (seq == 0) throw std::logic_error("journal records are numbered from 1");
  if (run_ == id) return;
  run_ = id, rv_.clear(), chunk_ = SIZE_MAX, count_ = bytes_ = 0;
  if (seq > 1) locate(id);
}

// What the record's key holds: the line, or where its parts are when it is over a chunk's budget.
std::string ClusterStore::value_of(const std::string& id, uint64_t seq, const std::string& line) {
  return key_of(seq).size() + line.size() > kChunkBytes ? put_parts(id, seq, line) : line;
}

void ClusterStore::append(const std::string& id, uint64_t seq, const std::string& line) {
  begin_run(id, seq);
  commit(seq, key_of(seq), value_of(id, seq, line));
}

// One record, waited for: in the chunk it fits, settled by reading the chunk back when the API's
// answer does not say.
void ClusterStore::commit(uint64_t seq, const std::string& key, const std::string& value) {
  const std::string& id = run_;
  std::string last, name;
  size_t cost = key.size() + value.size();
  int conflicts = 0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    // A chunk is made with its first record; the next begins when this record would not fit.
    bool fresh = chunk_ == SIZE_MAX || count_ >= kChunk || bytes_ + cost > kChunkBytes;
    size_t chunk = fresh ? (chunk_ == SIZE_MAX ? 0 : chunk_ + 1) : chunk_;
    name = object_name(id, "-j" + std::to_string(chunk));
    k8s::Reply r;
    if (fresh) {
      r = call("POST", path(), configmap(name, id, "journal", {{key, value}}).dump());
    } else {
      json patch = {{"metadata", {{"resourceVersion", rv_}}}, {"data", {{key, value}}}};
      r = call("PATCH", path(name), patch.dump(), "application/merge-patch+json");
    }
    if (r.error.empty()) {
      if (fresh) chunk_ = chunk, count_ = 0, bytes_ = 0;
      rv_ = rv_of(r.body), count_++, bytes_ += cost;
      return;
    }
    // Taken after all (a reply lost on the way), or refused because someone else wrote: the chunk says.
    if (settled(chunk, key, value)) return;
    // A refused write whose record no one else took: the chunk changed in another way (a label,
    // an annotation, an apiserver's own conflict): tried again against its version now. Another
    // engine writing this run would have taken this record's key (settled() throws then).
    last = r.error + (r.message.empty() ? "" : ": " + r.message);
    if (r.error == "conflict") conflicts++;
  }
  if (conflicts == 4)
    throw std::runtime_error("the run's journal in the cluster (" + ns_ + "/" + name +
                             ") changed under this run four times over: another engine is writing run " + id);
  throw std::runtime_error("the cluster did not take journal record " + std::to_string(seq) + " of run " + id + " (" +
                           ns_ + "/" + name + "): " + last);
}

void ClusterStore::append_async(boost::asio::io_context& io, const std::string& id, uint64_t seq, const std::string& line,
                                std::function<void(const std::string&)> sent) {
  if (!failed_.empty()) return sent(failed_);
  std::string value;
  try {
    begin_run(id, seq);
    value = value_of(id, seq, line);
  } catch (const std::exception& e) {
    failed_ = e.what();
    return sent(failed_);
  }
  queue_.push_back({seq, key_of(seq), std::move(value), std::move(sent)});
  if (!async_api_) async_api_ = std::make_shared<k8s::Api>(io, cluster_);
  if (!in_flight_) send_batch();
}

// What is queued, in one request: a patch of the chunk with as many records as it has room for,
// or the next chunk made with them.
void ClusterStore::send_batch() {
  if (queue_.empty() || in_flight_ || !failed_.empty()) return;
  auto cost = [](const Pending& p) { return p.key.size() + p.value.size(); };
  bool fresh = chunk_ == SIZE_MAX || count_ >= kChunk || bytes_ + cost(queue_.front()) > kChunkBytes;
  size_t chunk = fresh ? (chunk_ == SIZE_MAX ? 0 : chunk_ + 1) : chunk_;
  size_t n = fresh ? 0 : count_, bytes = fresh ? 0 : bytes_;
  json data = json::object();
  flight_.clear();
  while (!queue_.empty() && n < kChunk && bytes + cost(queue_.front()) <= kChunkBytes) {
    n++, bytes += cost(queue_.front());
    data[queue_.front().key] = queue_.front().value;
    flight_.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  std::string name = object_name(run_, "-j" + std::to_string(chunk));
  k8s::CallOptions opts;
  opts.timeout = 20;
  opts.rate_limited = false;  // waited for like an fsync: holding it back would stall the run's steps
  std::string method = "POST", target = path(), body;
  if (fresh) {
    body = configmap(name, run_, "journal", std::move(data)).dump();
  } else {
    method = "PATCH", target = path(name), opts.content_type = "application/merge-patch+json";
    body = json{{"metadata", {{"resourceVersion", rv_}}}, {"data", std::move(data)}}.dump();
  }
  in_flight_ = true, flight_chunk_ = chunk;
  async_api_->call(method, target, body, opts, [this, alive = alive_, fresh, chunk](k8s::Reply r) {
    if (*alive) batch_answered(fresh, chunk, r);
  });
}

void ClusterStore::batch_answered(bool fresh, size_t chunk, const k8s::Reply& r) {
  in_flight_ = false;
  std::vector<Pending> batch = std::move(flight_);
  flight_.clear();
  if (r.error.empty()) {
    if (fresh) chunk_ = chunk, count_ = 0, bytes_ = 0;
    rv_ = rv_of(r.body);
    for (const auto& p : batch) count_++, bytes_ += p.key.size() + p.value.size();
    // Answered before the next batch goes: a resumed step's record joins the queue meanwhile.
    for (auto& p : batch) p.sent("");
  } else {
    settle(std::move(batch), chunk);
  }
  send_batch();
}

// Records whose request was refused or not answered: each written as append() does (the chunk
// read back says what the API took). The first that cannot be fails it and everything after it.
void ClusterStore::settle(std::vector<Pending> records, size_t chunk) {
  // One read first: a request whose reply was lost took all of its records or none.
  size_t taken = 0;
  if (chunk != SIZE_MAX && !records.empty() && failed_.empty()) {
    try {
      while (taken < records.size() && settled(chunk, records[taken].key, records[taken].value)) taken++;
    } catch (const std::exception& e) {
      failed_ = e.what();
    }
  }
  for (size_t i = 0; i < taken; ++i) records[i].sent("");
  records.erase(records.begin(), records.begin() + static_cast<std::ptrdiff_t>(taken));
  for (auto& p : records) {
    if (failed_.empty()) {
      try {
        commit(p.seq, p.key, p.value);
      } catch (const std::exception& e) {
        failed_ = e.what();
      }
    }
    p.sent(failed_);
  }
  if (!failed_.empty()) {
    std::deque<Pending> rest = std::move(queue_);
    queue_.clear();
    for (auto& p : rest) p.sent(failed_);
  }
}

std::string ClusterStore::detach() {
  *alive_ = false;  // the request on its way, if any, is settled below instead of by its reply
  alive_ = std::make_shared<bool>(true);
  async_api_.reset();
  bool was_in_flight = in_flight_;
  in_flight_ = false;
  std::vector<Pending> left = std::move(flight_);
  flight_.clear();
  for (auto& p : queue_) left.push_back(std::move(p));
  queue_.clear();
  if (left.empty()) return "";
  settle(std::move(left), was_in_flight ? flight_chunk_ : SIZE_MAX);
  return failed_;
}

void ClusterStore::put_report(const std::string& id, const std::string& report_json) {
  std::string name = object_name(id, "-report");
  // Over the object limit: the report stays on the local disk only, and the cluster says so.
  std::string text = report_json.size() < 900 * 1024 ? report_json
                                                      : json{{"truncated", true}, {"bytes", report_json.size()}}.dump();
  auto obj = configmap(name, id, "report", {{"report.json", text}});
  auto r = call("POST", path(), obj.dump());
  if (r.error == "conflict") {  // a resumed run ends again: its new report replaces the old one
    auto g = call("GET", path(name), "");
    obj["metadata"]["resourceVersion"] = rv_of(g.body);
    r = call("PUT", path(name), obj.dump());
  }
  if (!r.error.empty()) throw std::runtime_error("keeping run " + id + "'s report in the cluster: " + r.error + ": " + r.message);
}

void ClusterStore::send_control(const std::string& id, const std::string& line) {
  auto run = call("GET", path(object_name(id, "")), "");
  if (run.error == "not found") throw ConfigError("no run '" + id + "' in the cluster's namespace " + ns_);
  if (!run.error.empty()) throw ConfigError("reading run " + id + " in " + ns_ + ": " + run.error + ": " + run.message);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  char key[40];
  std::snprintf(key, sizeof key, "c%013lld-%04x", static_cast<long long>(ms), static_cast<unsigned>(std::rand() & 0xffff));
  std::string name = object_name(id, "-ctl");
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto r = call("PATCH", path(name), json{{"data", {{key, line}}}}.dump(), "application/merge-patch+json");
    if (r.error.empty()) return;
    if (r.error == "not found") {
      r = call("POST", path(), configmap(name, id, "ctl", {{key, line}}).dump());
      if (r.error.empty()) return;
      if (r.error == "conflict") continue;  // made meanwhile by another ctl: patch it
    }
    throw ConfigError("sending to run " + id + " (" + ns_ + "/" + name + "): " + r.error + ": " + r.message);
  }
  throw ConfigError("sending to run " + id + " (" + ns_ + "/" + name + "): the ConfigMap kept changing");
}

std::optional<std::map<std::string, std::string>> ClusterStore::controls(const std::string& id) {
  auto r = call("GET", path(object_name(id, "-ctl")), "");
  if (r.error == "not found") return std::map<std::string, std::string>{};
  if (!r.error.empty()) return std::nullopt;
  std::map<std::string, std::string> out;
  const json data = r.body.value("data", json::object());
  for (const auto& [key, line] : data.items())
    if (line.is_string()) out[key] = line.get<std::string>();
  return out;
}

std::optional<ClusterStore::Saved> ClusterStore::load(const std::string& id) {
  auto r = call("GET", path(object_name(id, "")), "");
  if (r.error == "not found") return std::nullopt;
  if (!r.error.empty()) throw ConfigError("reading run " + id + " from the cluster (namespace " + ns_ + "): " + r.error + ": " + r.message);
  Saved s;
  s.run_json = r.body.value("data", json::object()).value("run.json", "");
  // Every chunk the run has (by its labels), so one deleted in the middle is named, not read as
  // the journal's end (the steps after it would run again).
  auto have = chunk_numbers(id);
  run_ = id, rv_.clear(), chunk_ = SIZE_MAX, count_ = bytes_ = 0;
  size_t chunks = have.empty() ? 0 : *have.rbegin() + 1;
  uint64_t want = 1;
  std::map<size_t, json> read;
  for (size_t chunk : have) {
    std::string name = object_name(id, "-j" + std::to_string(chunk));
    auto c = call("GET", path(name), "");
    if (!c.error.empty()) throw ConfigError("reading " + ns_ + "/" + name + ": " + c.error + ": " + c.message);
    read[chunk] = std::move(c.body);
  }
  // A chunk missing in the middle: the records between its neighbours' are named.
  auto number = [](const std::string& key) { return key.size() > 1 && key[0] == 'r' ? std::strtoull(key.c_str() + 1, nullptr, 10) : 0ULL; };
  for (size_t chunk = 0; chunk < chunks; ++chunk) {
    if (read.count(chunk)) continue;
    uint64_t from = 1;
    std::string upto;
    auto next = read.upper_bound(chunk);
    if (next != read.begin()) {
      const json before = std::prev(next)->second.value("data", json::object());
      if (!before.empty()) from = number(before.rbegin().key()) + 1;
    }
    const json after = next->second.value("data", json::object());
    if (!after.empty()) upto = std::to_string(number(after.begin().key()) - 1);
    throw ConfigError("run " + id + "'s journal in the cluster misses " + ns_ + "/" + object_name(id, "-j" + std::to_string(chunk)) +
                      " (there is a -j" + std::to_string(chunks - 1) + "): records " +
                      (upto.empty() ? "from " + std::to_string(from) + " on" : std::to_string(from) + " to " + upto) +
                      " are lost, so what they recorded cannot be told");
  }
  for (size_t chunk = 0; chunk < chunks; ++chunk) {
    std::string name = object_name(id, "-j" + std::to_string(chunk));
    // Keys sort as the records were numbered (r00000001 ...); each must be the next.
    const json data = read[chunk].value("data", json::object());  // named: items() of a temporary would dangle
    for (const auto& [key, line] : data.items()) {
      if (!line.is_string()) continue;
      if (key != key_of(want))
        throw ConfigError("run " + id + "'s journal in the cluster (" + ns_ + "/" + name + ") misses record " +
                          std::to_string(want) + " (" + key_of(want) + "; the next there is " + key +
                          "): what it recorded cannot be told");
      s.journal += resolve(id, name, key, line.get<std::string>()) + "\n";
      want++;
    }
    adopt(chunk, read[chunk]);
  }
  auto rep = call("GET", path(object_name(id, "-report")), "");
  if (rep.error.empty()) s.report = rep.body.value("data", json::object()).value("report.json", "");
  return s;
}

std::vector<std::string> ClusterStore::runs() {
  auto r = call("GET", path() + "?labelSelector=" +
                           http::query_escape("app.kubernetes.io/managed-by=engine,engine.dev/part=run"), "");
  if (!r.error.empty()) throw ConfigError("listing runs in the cluster (namespace " + ns_ + "): " + r.error + ": " + r.message);
  std::vector<std::pair<std::string, std::string>> found;  // (created, id)
  for (auto& item : r.body.value("items", json::array())) {
    auto meta = item.value("metadata", json::object());
    found.emplace_back(meta.value("creationTimestamp", ""), meta.value("annotations", json::object()).value("engine.dev/run-id", ""));
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found)
    if (!f.second.empty()) out.push_back(f.second);
  return out;
}

size_t ClusterStore::forget_older_than(double days) {
  auto r = call("GET", path() + "?labelSelector=" +
                           http::query_escape("app.kubernetes.io/managed-by=engine,engine.dev/part=report"), "");
  if (!r.error.empty()) return 0;
  auto now = std::chrono::system_clock::now();
  size_t gone = 0;
  for (auto& item : r.body.value("items", json::array())) {
    auto meta = item.value("metadata", json::object());
    std::tm tm{};
    std::string created = meta.value("creationTimestamp", "");
    if (!strptime(created.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm)) continue;
    auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
    if (now - at < std::chrono::duration<double>(days * 86400)) continue;
    // Finished runs only (they have a report); their report goes last, so a half-done delete is
    // finished by the next run's pass.
    std::string id = meta.value("annotations", json::object()).value("engine.dev/run-id", "");
    if (id.empty()) continue;
    call("DELETE", path(object_name(id, "")), "");
    for (size_t chunk = 0;; ++chunk)
      if (call("DELETE", path(object_name(id, "-j" + std::to_string(chunk))), "").error == "not found") break;
    auto parts = call("GET", path() + "?labelSelector=" +
                                 http::query_escape("app.kubernetes.io/managed-by=engine,engine.dev/part=record,engine.dev/run=" +
                                                    label_value(id)), "");
    for (auto& part : parts.body.value("items", json::array())) {
      auto pm = part.value("metadata", json::object());
      if (pm.value("annotations", json::object()).value("engine.dev/run-id", "") == id)
        call("DELETE", path(pm.value("name", "")), "");
    }
    call("DELETE", path(object_name(id, "-ctl")), "");
    call("DELETE", path(object_name(id, "-report")), "");
    ++gone;
  }
  return gone;
}

}  // namespace engine::run
