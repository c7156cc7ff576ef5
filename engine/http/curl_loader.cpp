// libcurl, loaded when the first HTTP client is made instead of at every start. Linked, it brings
// ~30 libraries (GnuTLS through librtmp, Kerberos, LDAP, SASL, ...) that the dynamic loader maps
// and relocates before main: about 10 ms of CPU for every `engine` process, paid by `engine check`,
// `engine ctl` and every SSH-only run that never speaks HTTP. The engine is linked without it;
// these definitions of the functions engine/http/client.cpp calls forward to the library opened
// here on first use (the Debian package names libcurl4 in its Depends by hand, as dpkg-shlibdeps
// no longer sees it).
#define CURL_DISABLE_TYPECHECK  // the functions themselves are defined here, not the checking macros
#include <curl/curl.h>
#include <dlfcn.h>

#include <cstdarg>
#include <mutex>
#include <stdexcept>
#include <string>

#include "engine/http/curl_loader.hpp"

namespace {

constexpr const char* kLibrary = "libcurl.so.4";

struct Api {
  decltype(&::curl_global_init) global_init;
  decltype(&::curl_easy_init) easy_init;
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_easy_setopt) easy_setopt;
  decltype(&::curl_easy_getinfo) easy_getinfo;
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_multi_init) multi_init;
  decltype(&::curl_multi_cleanup) multi_cleanup;
  decltype(&::curl_multi_setopt) multi_setopt;
  decltype(&::curl_multi_add_handle) multi_add_handle;
  decltype(&::curl_multi_remove_handle) multi_remove_handle;
  decltype(&::curl_multi_socket_action) multi_socket_action;
  decltype(&::curl_multi_info_read) multi_info_read;
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
};

Api api_;
std::string error_;  // why the library could not be loaded ("" once it is)

template <typename F>
bool bind(void* lib, F& fn, const char* name) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn) error_ = std::string(kLibrary) + " has no " + name + ": not the libcurl the engine was built for";
  return fn != nullptr;
}

void open_library() {
  void* lib = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    error_ = std::string(kLibrary) + " could not be loaded (" + (why ? why : "?") +
             "): the engine's HTTP (the Kubernetes API, etcd, Prometheus) needs libcurl4 installed";
    return;
  }
  bool ok = bind(lib, api_.global_init, "curl_global_init") && bind(lib, api_.easy_init, "curl_easy_init") &&
            bind(lib, api_.easy_cleanup, "curl_easy_cleanup") && bind(lib, api_.easy_setopt, "curl_easy_setopt") &&
            bind(lib, api_.easy_getinfo, "curl_easy_getinfo") && bind(lib, api_.easy_strerror, "curl_easy_strerror") &&
            bind(lib, api_.multi_init, "curl_multi_init") && bind(lib, api_.multi_cleanup, "curl_multi_cleanup") &&
            bind(lib, api_.multi_setopt, "curl_multi_setopt") && bind(lib, api_.multi_add_handle, "curl_multi_add_handle") &&
            bind(lib, api_.multi_remove_handle, "curl_multi_remove_handle") &&
            bind(lib, api_.multi_socket_action, "curl_multi_socket_action") &&
            bind(lib, api_.multi_info_read, "curl_multi_info_read") && bind(lib, api_.slist_append, "curl_slist_append") &&
            bind(lib, api_.slist_free_all, "curl_slist_free_all");
  if (ok) error_.clear();
}

const Api& api() {
  static std::once_flag once;
  std::call_once(once, open_library);
  if (!error_.empty()) throw std::runtime_error(error_);
  return api_;
}

// The option's type is in its number (curl.h's CURLOPTTYPE_*): the one argument is read as what
// it is and passed on as such.
template <typename Fn, typename Handle, typename Option>
auto forward_option(Fn fn, Handle h, Option opt, va_list ap) {
  long n = static_cast<long>(opt);
  if (n < CURLOPTTYPE_OBJECTPOINT) return fn(h, opt, va_arg(ap, long));
  if (n >= CURLOPTTYPE_OFF_T && n < CURLOPTTYPE_BLOB) return fn(h, opt, va_arg(ap, curl_off_t));
  return fn(h, opt, va_arg(ap, void*));  // objects, callbacks and blobs: a pointer each
}

}  // namespace

namespace engine::http {

void load_curl() { (void)api(); }

}  // namespace engine::http

extern "C" {

CURLcode curl_global_init(long flags) { return api().global_init(flags); }
CURL* curl_easy_init(void) { return api().easy_init(); }
void curl_easy_cleanup(CURL* h) { api().easy_cleanup(h); }
const char* curl_easy_strerror(CURLcode code) { return api().easy_strerror(code); }

CURLcode curl_easy_setopt(CURL* h, CURLoption opt, ...) {
  va_list ap;
  va_start(ap, opt);
  CURLcode rc = forward_option(api().easy_setopt, h, opt, ap);
  va_end(ap);
  return rc;
}

CURLcode curl_easy_getinfo(CURL* h, CURLINFO info, ...) {
  va_list ap;
  va_start(ap, info);
  CURLcode rc = api().easy_getinfo(h, info, va_arg(ap, void*));  // every CURLINFO takes a pointer
  va_end(ap);
  return rc;
}

CURLM* curl_multi_init(void) { return api().multi_init(); }
CURLMcode curl_multi_cleanup(CURLM* m) { return api().multi_cleanup(m); }

CURLMcode curl_multi_setopt(CURLM* m, CURLMoption opt, ...) {
  va_list ap;
  va_start(ap, opt);
  CURLMcode rc = forward_option(api().multi_setopt, m, opt, ap);
  va_end(ap);
  return rc;
}

CURLMcode curl_multi_add_handle(CURLM* m, CURL* h) { return api().multi_add_handle(m, h); }
CURLMcode curl_multi_remove_handle(CURLM* m, CURL* h) { return api().multi_remove_handle(m, h); }
CURLMcode curl_multi_socket_action(CURLM* m, curl_socket_t s, int ev_bitmask, int* running) {
  return api().multi_socket_action(m, s, ev_bitmask, running);
}
CURLMsg* curl_multi_info_read(CURLM* m, int* msgs_in_queue) { return api().multi_info_read(m, msgs_in_queue); }
curl_slist* curl_slist_append(curl_slist* list, const char* s) { return api().slist_append(list, s); }
void curl_slist_free_all(curl_slist* list) { api().slist_free_all(list); }

}  // extern "C"
