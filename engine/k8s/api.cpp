#include "engine/k8s/api.hpp"
#include "engine/log/log.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "engine/core/text.hpp"

extern char** environ;

namespace engine::k8s {

namespace asio = boost::asio;

std::string error_word(long status, const http::Response& r) {
  if (status >= 200 && status < 300) return "";
  if (status == 0) {
    if (r.error == "cancelled") return "cancelled";
    return r.timed_out ? "timeout" : "unreachable";
  }
  switch (status) {
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not found";
    case 409: return "conflict";
    case 410: return "gone";
    case 422: case 400: return "invalid";
    case 429: return "too many requests";
    default: return status >= 500 ? "server error" : "failed";
  }
}

Api::Api(asio::io_context& io, Cluster cluster, http::Options opts, bool defer_to_apf)
    : io_(io), cluster_(std::move(cluster)), http_(io, opts), defer_to_apf_(defer_to_apf) {}

std::function<void()> Api::call(const std::string& method, const std::string& path, std::string body, CallOptions opts,
                                std::function<void(Reply)> done) {
  auto cancelled = std::make_shared<bool>(false);
  auto inner_cancel = std::make_shared<std::function<void()>>();
  auto self = shared_from_this();
  with_token([self, method, path, body = std::move(body), opts, done, cancelled, inner_cancel](std::string token, std::string err) mutable {
    if (*cancelled) return;
    if (!err.empty()) {
      Reply r;
      r.error = "unauthorized";
      r.message = err;
      done(r);
      return;
    }
    http::Request req;
    req.method = method;
    req.url = self->cluster_.server + path;
    req.tls = self->cluster_.tls;
    if (!self->exec_cert_.empty()) {  // the plugin's client certificate, held in memory
      req.tls.cert_data = self->exec_cert_;
      req.tls.key_data = self->exec_key_;
      req.tls.cert_file.clear();
      req.tls.key_file.clear();
    }
    req.proxy = self->cluster_.proxy_url;
    const Cluster& c = self->cluster_;
    if (!c.impersonate_user.empty()) req.headers.push_back({"Impersonate-User", c.impersonate_user});
    if (!c.impersonate_uid.empty()) req.headers.push_back({"Impersonate-Uid", c.impersonate_uid});
    for (const auto& g : c.impersonate_groups) req.headers.push_back({"Impersonate-Group", g});
    req.bearer = token;
    req.body = std::move(body);
    req.timeout = opts.timeout;
    req.idle_timeout = opts.idle_timeout;
    req.on_data = opts.on_data;
    if (!opts.retry) req.max_retries = 0;
    req.rate_limited = opts.rate_limited;
    req.headers.push_back({"Accept", "application/json"});
    if (!req.body.empty()) req.headers.push_back({"Content-Type", opts.content_type});
    req.headers.push_back({"User-Agent", "engine/" ENGINE_VERSION});
    *inner_cancel = self->http_.send(std::move(req), [self, done](http::Response resp) {
      Reply r;
      r.status = resp.status;
      r.headers = resp.headers;
      r.error = error_word(resp.status, resp);
      if (!resp.body.empty()) {
        r.body = json::parse(resp.body, nullptr, false);
        if (r.body.is_discarded()) r.body = resp.body;
      }
      if (resp.status == 401 && self->cluster_.exec) self->exec_have_ = false;  // a stale plugin credential
      if (self->defer_to_apf_ && self->http_.limiting() && resp.headers.count("x-kubernetes-pf-flowschema-uid")) {
        self->http_.stop_limiting();
        log::emit(log::Level::debug, "", "the API server does its own flow control (API Priority and Fairness): "
                  "client-side rate limit off", {{"flow_schema", resp.headers["x-kubernetes-pf-flowschema-uid"]}});
      }
      if (!r.error.empty()) {
        r.message = resp.error;
        if (r.body.is_object() && r.body.contains("message") && r.body["message"].is_string())
          r.message = r.body["message"].get<std::string>();
        if (r.message.empty()) r.message = "HTTP " + std::to_string(resp.status);
      }
      done(std::move(r));
    });
  });
  return [cancelled, inner_cancel] {
    *cancelled = true;
    if (*inner_cancel) (*inner_cancel)();
  };
}

void Api::with_token(std::function<void(std::string, std::string)> next) {
  if (!cluster_.token_file.empty()) {
    std::ifstream f(cluster_.token_file);
    std::stringstream ss;
    ss << f.rdbuf();
    if (!f) {
      next("", "cannot read token file " + cluster_.token_file);
      return;
    }
    next(text::trim(ss.str()), "");
    return;
  }
  if (cluster_.exec) {
    if (exec_have_ && (exec_expiry_ == std::chrono::system_clock::time_point{} ||
                                 std::chrono::system_clock::now() + std::chrono::seconds(10) < exec_expiry_)) {
      next(exec_token_, "");
      return;
    }
    exec_waiting_.push_back(std::move(next));
    if (exec_waiting_.size() == 1) run_exec_plugin([self = shared_from_this()](std::string token, std::string err) {
        auto waiting = std::move(self->exec_waiting_);
        self->exec_waiting_.clear();
        for (auto& w : waiting) w(token, err);
      });
    return;
  }
  next(cluster_.token, "");
}

// Runs the credential plugin as kubectl does: KUBERNETES_EXEC_INFO in its environment, an
// ExecCredential on its stdout; the token is kept until status.expirationTimestamp.
void Api::run_exec_plugin(std::function<void(std::string, std::string)> next) {
  const ExecPlugin& p = *cluster_.exec;
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    next("", "exec plugin: pipe failed");
    return;
  }
  std::string info = json{{"apiVersion", p.api_version.empty() ? "client.authentication.k8s.io/v1" : p.api_version},
                          {"kind", "ExecCredential"},
                          {"spec", {{"interactive", false}}}}.dump();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::setenv("KUBERNETES_EXEC_INFO", info.c_str(), 1);
    for (const auto& [k, v] : p.env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(p.command.c_str()));
    for (const auto& a : p.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(p.command.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  if (pid < 0) {
    ::close(out[0]);
    next("", "exec plugin: fork failed");
    return;
  }
  auto sd = std::make_shared<asio::posix::stream_descriptor>(io_, out[0]);
  auto buf = std::make_shared<std::string>();
  auto self = shared_from_this();
  asio::async_read(*sd, asio::dynamic_buffer(*buf), [self, sd, buf, pid, next, cmd = p.command](const boost::system::error_code&, size_t) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      next("", "exec plugin " + cmd + " failed (status " + std::to_string(WEXITSTATUS(status)) + ")");
      return;
    }
    json cred = json::parse(*buf, nullptr, false);
    const json st = cred.is_object() && cred.contains("status") && cred["status"].is_object() ? cred["status"] : json();
    auto field = [&](const char* k) { return st.contains(k) && st[k].is_string() ? st[k].get<std::string>() : std::string(); };
    std::string token = field("token"), cert = field("clientCertificateData"), key = field("clientKeyData");
    // client.authentication.k8s.io/v1: a token, or a client certificate and its key (PEM).
    if (token.empty() && (cert.empty() || key.empty())) {
      next("", "exec plugin " + cmd + " printed no ExecCredential with status.token or status.clientCertificateData and clientKeyData");
      return;
    }
    log::add_secret(token);
    log::add_secret(key);
    self->exec_token_ = token;
    self->exec_cert_ = cert;
    self->exec_key_ = key;
    self->exec_have_ = true;
    self->exec_expiry_ = {};
    if (cred["status"].contains("expirationTimestamp") && cred["status"]["expirationTimestamp"].is_string()) {
      std::tm tm{};
      std::istringstream ts(cred["status"]["expirationTimestamp"].get<std::string>());
      ts >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
      if (!ts.fail()) self->exec_expiry_ = std::chrono::system_clock::from_time_t(timegm(&tm));
    }
    next(self->exec_token_, "");
  });
}

void Api::resource(const std::string& name, std::function<void(std::optional<Resource>, std::string)> done) {
  auto self = shared_from_this();
  discover([self, name, done](std::string err) {
    if (!err.empty()) {
      done(std::nullopt, err);
      return;
    }
    std::string key = name;
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
    auto it = self->resources_.find(key);
    if (it == self->resources_.end()) {
      std::vector<std::string> names;
      for (auto& [n, _] : self->resources_) names.push_back(n);
      done(std::nullopt, "the server has no resource '" + name + "'" + text::did_you_mean(key, names));
      return;
    }
    done(it->second, "");
  });
}

// Reads /api/v1 and every group's preferred version once.
void Api::discover(std::function<void(std::string)> done) {
  if (discovered_) {
    done("");
    return;
  }
  discovery_waiting_.push_back(std::move(done));
  if (discovery_waiting_.size() > 1) return;
  auto self = shared_from_this();
  auto finish = [self](std::string err) {
    if (err.empty()) self->discovered_ = true;
    auto waiting = std::move(self->discovery_waiting_);
    self->discovery_waiting_.clear();
    for (auto& w : waiting) w(err);
  };
  auto pending = std::make_shared<int>(0);
  auto failed = std::make_shared<std::string>();
  auto add_list = [self](const std::string& group, const std::string& version, const json& list) {
    for (const auto& r : list.value("resources", json::array())) {
      std::string plural = r.value("name", "");
      if (plural.empty() || plural.find('/') != std::string::npos) continue;  // subresources
      Resource res{group, version, plural, r.value("kind", ""), r.value("namespaced", false)};
      auto lower = [](std::string s) {
        std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
        return s;
      };
      std::vector<std::string> names{plural, lower(res.kind), r.value("singularName", "")};
      for (const auto& sn : r.value("shortNames", json::array()))
        if (sn.is_string()) names.push_back(sn.get<std::string>());
      for (const auto& n : names) {
        if (n.empty()) continue;
        // The core group wins a bare name; group-qualified names are always there.
        if (group.empty() || !self->resources_.count(n)) self->resources_[n] = res;
        if (!group.empty()) self->resources_[n + "." + group] = res;
      }
    }
  };
  auto one = [self, pending, failed, finish, add_list](const std::string& group, const std::string& version) {
    ++*pending;
    std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
    self->call("GET", p, "", {}, [pending, failed, finish, add_list, group, version](Reply r) {
      if (r.error.empty()) add_list(group, version, r.body);
      else if (group.empty()) *failed = "discovery: " + r.error + ": " + r.message;  // the core group must answer
      if (--*pending == 0) finish(*failed);
    });
  };
  ++*pending;
  one("", "v1");
  call("GET", "/apis", "", {}, [pending, failed, finish, one](Reply r) {
    if (r.error.empty())
      for (const auto& g : r.body.value("groups", json::array())) {
        auto pv = g.value("preferredVersion", json::object());
        if (pv.contains("version")) one(g.value("name", ""), pv["version"].get<std::string>());
      }
    else *failed = "discovery: " + r.error + ": " + r.message;
    if (--*pending == 0) finish(*failed);
  });
}

}  // namespace engine::k8s
