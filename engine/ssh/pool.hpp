// Sessions by target: one authenticated session per host, reused by every later call; at most
// `max_handshakes` connections being set up at once, so a wide fan-out does not overflow sshd's
// listen backlog (MaxStartups). Jump hosts are sessions too, shared by every host behind them.
#pragma once
#include <boost/asio/io_context.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>

#include "engine/ssh/session.hpp"

namespace engine::ssh {

class Pool {
 public:
  using Ready = std::function<void(std::shared_ptr<Session>, Result)>;

  Pool(boost::asio::io_context& io, Options opts, size_t max_handshakes = 64)
      : io_(io), opts_(opts), max_handshakes_(max_handshakes) {}
  ~Pool();

  // Calls back (on a later turn) with a live authenticated session for the target, or a failure.
  // A new session keeps `t` (shared, not copied).
  void get(std::shared_ptr<const Target> t, Ready ready);
  void get(const Target& t, Ready ready) { get(std::make_shared<const Target>(t), std::move(ready)); }
  // Ends every session (the run is over).
  void close_all();
  // True until close_all (the destructor calls it): a callback that outlives the pool (posted
  // before it ended, run after) checks this before it touches the pool again.
  std::shared_ptr<const bool> open_flag() const { return open_; }

  size_t handshakes_in_flight() const { return handshaking_; }
  size_t peak_handshakes() const { return peak_handshakes_; }
  void set_max_handshakes(size_t n) { max_handshakes_ = n ? n : 1; }
  void set_options(Options o) { opts_ = o; }

 private:
  struct Entry {
    std::shared_ptr<Session> session;
    std::vector<Ready> waiting;
  };
  void connect(const std::string& key);
  void connect_direct(const Target& t, const std::string& key, std::shared_ptr<Session> s);
  // again: this is the second try, after the jump host's session was found gone (not_sent).
  void connect_via_jump(const Target& t, std::shared_ptr<Session> s, bool again = false);
  void settle(const std::string& key, Result r);
  void admit();

  boost::asio::io_context& io_;
  Options opts_;
  size_t max_handshakes_;
  size_t handshaking_ = 0, peak_handshakes_ = 0;
  std::shared_ptr<bool> open_ = std::make_shared<bool>(true);
  std::map<std::string, Entry> entries_;
  std::deque<std::function<void()>> queued_;
};

}  // namespace engine::ssh
