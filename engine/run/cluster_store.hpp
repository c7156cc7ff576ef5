// A run's records kept in the cluster's API (`--state-dir k8s://NAMESPACE`), so a run started in a
// pod that is evicted can be resumed by the next pod, elsewhere. ConfigMaps in the namespace:
//   engine-run-ID          run.json (made once; a second create of one id is refused)
//   engine-run-ID-jN       the journal's records, one key each ("r00000042": the journal line, CRC
//                          and all, as the file holds it); a chunk takes at most 256 records and
//                          768 KiB (the API refuses a ConfigMap over 1 MiB), then -jN+1 begins
//   engine-run-ID-rS-T-K   part K of record S when the record alone is over a chunk's budget (a
//                          step that returned a large value): the parts are made first, then the
//                          record's key says "@parts T N BYTES" (T: the writer's token, so a second
//                          writer's parts never replace the ones a record points to)
//   engine-run-ID-report   report.json, when the run ends
//   engine-run-ID-ctl      commands sent with engine ctl (the running engine polls it)
// Records are appended with a merge patch that carries the chunk's resourceVersion (the records
// queued meanwhile in one patch: append_async): the API acknowledges a record before its step goes
// on (as fsync does for the file), and a second writer makes the patch fail instead of interleaving. A reply lost in transit is settled by reading
// the chunk back. The local run directory stays the working copy; this is what survives the pod.
#pragma once
#include <boost/asio/io_context.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/k8s/api.hpp"

namespace engine::run {

class ClusterStore {
 public:
  static constexpr size_t kChunk = 256;               // records per ConfigMap at most
  static constexpr size_t kChunkBytes = 768 * 1024;   // keys and values per ConfigMap: under the API's 1 MiB
  static constexpr size_t kPartBytes = 768 * 1024;    // one part of a record over kChunkBytes

  ClusterStore(k8s::Cluster cluster, std::string ns);
  ~ClusterStore();
  const std::string& ns() const { return ns_; }

  // A new run's ConfigMap with run.json. Throws ConfigError naming the namespace when it cannot.
  void create_run(const std::string& id, const std::string& run_json);
  // Appends the journal line numbered seq (1-based); returns once the API has it. Throws
  // std::runtime_error when it cannot, or when another writer changed the run's journal.
  void append(const std::string& id, uint64_t seq, const std::string& line);
  // The same without holding the caller's event loop: records queue and go together, in order, one
  // request at a time on `io` (a group commit: a step's record goes with whatever other hosts'
  // steps wrote meanwhile, so a slow API server's write costs the run once per batch, not once per
  // record). sent("") once the API has the record; sent(why) when it will not, and every record
  // after it then fails the same way. A refused or unanswered request is settled record by record,
  // as append() does (blocking: the rare case).
  void append_async(boost::asio::io_context& io, const std::string& id, uint64_t seq, const std::string& line,
                    std::function<void(const std::string&)> sent);
  // Before `io` goes: what is still queued or on its way is written as append() does and answered.
  // Returns why a record could not be ("" when all are in).
  std::string detach();
  void put_report(const std::string& id, const std::string& report_json);

  struct Saved {
    std::string run_json;
    std::string journal;  // every line, '\n'-terminated, in order
    std::optional<std::string> report;
  };
  // A run's records (and the chunk appends continue in); nullopt when the namespace has no such run.
  std::optional<Saved> load(const std::string& id);
  // Every run's id, oldest first.
  std::vector<std::string> runs();
  // Runs whose last record is older than `days` days: their ConfigMaps deleted. Returns how many.
  size_t forget_older_than(double days);

  // engine ctl for a run kept here: each command a key of ConfigMap engine-run-ID-ctl, named by
  // the time it was sent ("c1764650000123-3fa2"), so commands sort in the order they were sent.
  // Throws ConfigError when the run is not in the namespace or the API refuses.
  void send_control(const std::string& id, const std::string& line);
  // The ctl ConfigMap's commands, key → line (empty when there is none); nullopt when the API
  // did not answer.
  std::optional<std::map<std::string, std::string>> controls(const std::string& id);

  // The ConfigMap name of a run's part ("" for run.json, "-j3", "-report", "-ctl").
  static std::string object_name(const std::string& id, const std::string& part);

 private:
  k8s::Reply call(const std::string& method, const std::string& path, const std::string& body,
                  const std::string& content_type = "application/json");
  void begin_run(const std::string& id, uint64_t seq);
  std::string value_of(const std::string& id, uint64_t seq, const std::string& line);
  void commit(uint64_t seq, const std::string& key, const std::string& value);
  struct Pending {
    uint64_t seq;
    std::string key, value;
    std::function<void(const std::string&)> sent;
  };
  void send_batch();
  void batch_answered(bool fresh, size_t chunk, const k8s::Reply& r);
  void settle(std::vector<Pending> records, size_t chunk);
  std::string path(const std::string& name = "") const;
  bool settled(size_t chunk, const std::string& key, const std::string& value);
  void adopt(size_t chunk, const nlohmann::json& obj);
  std::set<size_t> chunk_numbers(const std::string& id);
  void locate(const std::string& id);
  std::string put_parts(const std::string& id, uint64_t seq, const std::string& line);
  std::string resolve(const std::string& id, const std::string& chunk, const std::string& key, const std::string& value);

  std::string ns_;
  k8s::Cluster cluster_;
  boost::asio::io_context io_;
  std::shared_ptr<k8s::Api> api_;
  // append_async: its client on the caller's loop, the records not sent yet, the ones on their way.
  std::shared_ptr<k8s::Api> async_api_;
  std::deque<Pending> queue_;
  std::vector<Pending> flight_;
  bool in_flight_ = false;
  size_t flight_chunk_ = SIZE_MAX;
  std::string failed_;  // why a record could not be written: every later one fails the same way
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // a reply after detach() is dropped
  // The chunk appends go to (SIZE_MAX: none yet), its resourceVersion after this writer's last
  // append, and what it holds: the next record goes to a new chunk when it would not fit.
  std::string run_, rv_;
  size_t chunk_ = SIZE_MAX, count_ = 0, bytes_ = 0;
};

// "k8s://NAMESPACE" → NAMESPACE; nullopt for a directory.
std::optional<std::string> cluster_namespace(const std::string& state_flag);

}  // namespace engine::run
